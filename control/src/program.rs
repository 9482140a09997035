//! What a program file is, from its bytes: the facts of an ELF file that
//! decide how wrapguard can carry the program — class (32/64-bit),
//! machine, the loader it asks for (`PT_INTERP`; none means statically
//! linked), Go (which makes its socket calls without libc) — and the
//! interpreter of a `#!` script. Shared by the launcher (which picks the
//! mode for the program it starts, and explains it in `--doctor`) and the
//! shim (which picks it again for every program a carried process execs).
//!
//! [`ElfInfo::parse`] is sans-IO: it reads the header, program headers,
//! section headers and notes through a `read_at` closure, every offset
//! and length checked (a truncated or hostile file is an error, never a
//! panic); [`ElfInfo::from_bytes`] for a buffer, [`ElfInfo::from_path`]
//! for a file.
//!
//! ELF layout: the System V gABI, "ELF Header", "Program Header",
//! "Sections" and "Note Section"; Go's build ID note is
//! `cmd/internal/buildid` (name `"Go"`, type 4), its build info section
//! `.go.buildinfo` (`debug/buildinfo`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// `EI_CLASS` value for 32-bit objects.
const ELFCLASS32: u8 = 1;
/// `EI_CLASS` value for 64-bit objects.
const ELFCLASS64: u8 = 2;
/// `EI_DATA` value for little-endian objects.
const ELFDATA2LSB: u8 = 1;
/// `EI_DATA` value for big-endian objects.
const ELFDATA2MSB: u8 = 2;
/// Program header type: dynamic linking information.
const PT_DYNAMIC: u32 = 2;
/// Program header type: path of the program interpreter (dynamic loader).
const PT_INTERP: u32 = 3;
/// Program header type: notes.
const PT_NOTE: u32 = 4;
/// Section type: notes.
const SHT_NOTE: u32 = 7;
/// Go's build ID note type (name "Go").
const NOTE_GO_BUILDID: u32 = 4;
/// Largest table (program or section headers, section names) we read.
const MAX_TABLE: u64 = 4 << 20;
/// Largest note segment/section we scan, and longest `PT_INTERP` path.
const MAX_NOTE: u64 = 64 << 10;

/// Byte ranges of the ELF header fields that differ between the classes.
struct Layout {
    header_len: u64,
    phoff: (usize, usize),
    shoff: (usize, usize),
    phentsize: usize,
    phnum: usize,
    shentsize: usize,
    shnum: usize,
    shstrndx: usize,
    ph_len: u64,
    sh_len: u64,
}

const LAYOUT32: Layout = Layout {
    header_len: 52,
    phoff: (28, 4),
    shoff: (32, 4),
    phentsize: 42,
    phnum: 44,
    shentsize: 46,
    shnum: 48,
    shstrndx: 50,
    ph_len: 32,
    sh_len: 40,
};

const LAYOUT64: Layout = Layout {
    header_len: 64,
    phoff: (32, 8),
    shoff: (40, 8),
    phentsize: 54,
    phnum: 56,
    shentsize: 58,
    shnum: 60,
    shstrndx: 62,
    ph_len: 56,
    sh_len: 64,
};

/// 32-bit or 64-bit ELF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfClass {
    /// `ELFCLASS32`.
    Elf32,
    /// `ELFCLASS64`.
    Elf64,
}

impl fmt::Display for ElfClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElfClass::Elf32 => "32-bit",
            ElfClass::Elf64 => "64-bit",
        })
    }
}

/// `e_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfType {
    /// `ET_REL`: an object file.
    Relocatable,
    /// `ET_EXEC`: a fixed-address executable.
    Executable,
    /// `ET_DYN`: a shared object or a position-independent executable.
    SharedObject,
    /// `ET_CORE`.
    Core,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ElfType {
    fn from(v: u16) -> Self {
        match v {
            1 => ElfType::Relocatable,
            2 => ElfType::Executable,
            3 => ElfType::SharedObject,
            4 => ElfType::Core,
            n => ElfType::Unknown(n),
        }
    }
}

/// The facts about one ELF file that matter for `LD_PRELOAD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// 32- or 64-bit.
    pub class: ElfClass,
    /// Byte order.
    pub little_endian: bool,
    /// `e_type`.
    pub kind: ElfType,
    /// `e_machine` (62 = x86-64, 183 = AArch64, 3 = i386…).
    pub machine: u16,
    /// The program interpreter (`PT_INTERP`), e.g.
    /// `/lib64/ld-linux-x86-64.so.2`; `None`: statically linked (or a
    /// shared library).
    pub interpreter: Option<String>,
    /// Whether it has a `PT_DYNAMIC` segment.
    pub dynamic: bool,
    /// Whether it is a Go program (`.go.buildinfo` section or a Go build ID note).
    pub go: bool,
}

/// Why a file could not be read as ELF.
#[derive(Debug)]
pub enum ElfError {
    /// It does not start with `\x7fELF`.
    NotElf,
    /// A header field is invalid (class, byte order, entry size).
    Malformed(&'static str),
    /// A header or table points past the end of the file.
    Truncated(&'static str),
    /// The file could not be read.
    Io(io::Error),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => f.write_str("not an ELF file"),
            ElfError::Malformed(what) => write!(f, "malformed ELF file ({what})"),
            ElfError::Truncated(what) => write!(f, "truncated ELF file ({what})"),
            ElfError::Io(e) => write!(f, "cannot read it: {e}"),
        }
    }
}

impl std::error::Error for ElfError {}

/// Reads exactly `len` bytes at `off` (an error if the file is shorter).
type ReadAt<'a> = dyn Fn(u64, usize) -> io::Result<Vec<u8>> + 'a;

/// Typed reads of little- or big-endian fields from a byte slice; every
/// access is bounds-checked (out of range reads as `None`).
#[derive(Clone, Copy)]
struct Endian(bool);

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.0 {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        })
    }
    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.0 {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }
    fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(if self.0 {
            u64::from_le_bytes(s)
        } else {
            u64::from_be_bytes(s)
        })
    }
    /// A 4- or 8-byte address/offset field.
    fn word(self, b: &[u8], (at, len): (usize, usize)) -> Option<u64> {
        if len == 8 {
            self.u64(b, at)
        } else {
            self.u32(b, at).map(u64::from)
        }
    }
}

/// One program header, the fields we use.
struct Segment {
    kind: u32,
    offset: u64,
    size: u64,
}

/// One section header, the fields we use.
struct Section {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

impl ElfInfo {
    /// Parses an ELF file through `read_at(offset, len)`, which returns
    /// exactly `len` bytes or an error.
    pub fn parse(read_at: &ReadAt<'_>) -> Result<ElfInfo, ElfError> {
        let read = |off: u64, len: u64, what: &'static str| -> Result<Vec<u8>, ElfError> {
            let len = usize::try_from(len).map_err(|_| ElfError::Malformed(what))?;
            read_at(off, len).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    ElfError::Truncated(what)
                } else {
                    ElfError::Io(e)
                }
            })
        };
        let ident = read(0, 16, "identification").map_err(|e| match e {
            ElfError::Truncated(_) => ElfError::NotElf,
            e => e,
        })?;
        if ident.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err(ElfError::NotElf);
        }
        let (class, layout) = match ident[4] {
            ELFCLASS32 => (ElfClass::Elf32, &LAYOUT32),
            ELFCLASS64 => (ElfClass::Elf64, &LAYOUT64),
            _ => return Err(ElfError::Malformed("class")),
        };
        let e = match ident[5] {
            ELFDATA2LSB => Endian(true),
            ELFDATA2MSB => Endian(false),
            _ => return Err(ElfError::Malformed("byte order")),
        };
        let h = read(0, layout.header_len, "header")?;
        let bad = ElfError::Malformed("header");
        let word = |r: (usize, usize)| e.word(&h, r).ok_or(ElfError::Malformed("header"));
        let half = |at: usize| e.u16(&h, at).ok_or(ElfError::Malformed("header"));
        let kind = ElfType::from(e.u16(&h, 16).ok_or(bad)?);
        let machine = half(18)?;
        let (phoff, shoff) = (word(layout.phoff)?, word(layout.shoff)?);
        let (phentsize, phnum) = (u64::from(half(layout.phentsize)?), half(layout.phnum)?);
        let (shentsize, shnum) = (u64::from(half(layout.shentsize)?), half(layout.shnum)?);
        let shstrndx = half(layout.shstrndx)?;

        // Program headers.
        let mut segments = Vec::new();
        if phnum > 0 {
            if phentsize < layout.ph_len {
                return Err(ElfError::Malformed("program header size"));
            }
            let len = phentsize * u64::from(phnum);
            if len > MAX_TABLE {
                return Err(ElfError::Malformed("program header table too large"));
            }
            let t = read(phoff, len, "program headers")?;
            for i in 0..usize::from(phnum) {
                let b = &t[i * phentsize as usize..];
                let seg = if class == ElfClass::Elf64 {
                    (e.u32(b, 0), e.u64(b, 8), e.u64(b, 32))
                } else {
                    (
                        e.u32(b, 0),
                        e.u32(b, 4).map(u64::from),
                        e.u32(b, 16).map(u64::from),
                    )
                };
                if let (Some(kind), Some(offset), Some(size)) = seg {
                    segments.push(Segment { kind, offset, size });
                }
            }
        }
        let mut interpreter = None;
        let mut dynamic = false;
        let mut go = false;
        for s in &segments {
            match s.kind {
                PT_INTERP => {
                    if s.size > MAX_NOTE {
                        return Err(ElfError::Malformed("interpreter path too long"));
                    }
                    let b = read(s.offset, s.size, "interpreter path")?;
                    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                    interpreter = Some(String::from_utf8_lossy(&b[..end]).into_owned());
                }
                PT_DYNAMIC => dynamic = true,
                PT_NOTE if s.size <= MAX_NOTE => {
                    if let Ok(b) = read(s.offset, s.size, "notes") {
                        go |= has_go_note(e, &b);
                    }
                }
                _ => {}
            }
        }

        // Section headers (optional: stripped files may have none).
        if shoff != 0 && shentsize >= layout.sh_len && !go {
            let section = |i: u64| -> Result<Section, ElfError> {
                let b = read(shoff + i * shentsize, layout.sh_len, "section headers")?;
                let f = if class == ElfClass::Elf64 {
                    (
                        e.u32(&b, 0),
                        e.u32(&b, 4),
                        e.u64(&b, 24),
                        e.u64(&b, 32),
                        e.u32(&b, 40),
                    )
                } else {
                    (
                        e.u32(&b, 0),
                        e.u32(&b, 4),
                        e.u32(&b, 16).map(u64::from),
                        e.u32(&b, 20).map(u64::from),
                        e.u32(&b, 24),
                    )
                };
                match f {
                    (Some(name), Some(kind), Some(offset), Some(size), Some(link)) => Ok(Section {
                        name,
                        kind,
                        offset,
                        size,
                        link,
                    }),
                    _ => Err(ElfError::Malformed("section header")),
                }
            };
            // Extended numbering: the counts live in section 0.
            let first = section(0)?;
            let count = if shnum == 0 {
                first.size
            } else {
                u64::from(shnum)
            };
            let strndx = if shstrndx == 0xffff {
                u64::from(first.link)
            } else {
                u64::from(shstrndx)
            };
            if count * shentsize > MAX_TABLE {
                return Err(ElfError::Malformed("section header table too large"));
            }
            let table = read(shoff, count * shentsize, "section headers")?;
            let sections: Vec<Section> = (0..count as usize)
                .filter_map(|i| {
                    let b = table.get(i * shentsize as usize..)?;
                    Some(if class == ElfClass::Elf64 {
                        Section {
                            name: e.u32(b, 0)?,
                            kind: e.u32(b, 4)?,
                            offset: e.u64(b, 24)?,
                            size: e.u64(b, 32)?,
                            link: e.u32(b, 40)?,
                        }
                    } else {
                        Section {
                            name: e.u32(b, 0)?,
                            kind: e.u32(b, 4)?,
                            offset: u64::from(e.u32(b, 16)?),
                            size: u64::from(e.u32(b, 20)?),
                            link: e.u32(b, 24)?,
                        }
                    })
                })
                .collect();
            let names = sections
                .get(strndx as usize)
                .filter(|s| s.size <= MAX_TABLE)
                .map(|s| read(s.offset, s.size, "section names"))
                .transpose()?
                .unwrap_or_default();
            for s in &sections {
                let name = names
                    .get(s.name as usize..)
                    .and_then(|n| n.split(|&c| c == 0).next())
                    .unwrap_or_default();
                if name == b".go.buildinfo" {
                    go = true;
                } else if s.kind == SHT_NOTE && s.size <= MAX_NOTE {
                    if let Ok(b) = read(s.offset, s.size, "notes") {
                        go |= has_go_note(e, &b);
                    }
                }
            }
        }

        Ok(ElfInfo {
            class,
            little_endian: e.0,
            kind,
            machine,
            interpreter,
            dynamic,
            go,
        })
    }

    /// Parses an ELF image held in memory.
    #[cfg_attr(not(test), allow(dead_code))] // API for callers holding a buffer.
    pub fn from_bytes(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
        ElfInfo::parse(&|off, len| {
            usize::try_from(off)
                .ok()
                .and_then(|o| bytes.get(o..o.checked_add(len)?))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
        })
    }

    /// Reads the parts of the file at `path` it needs (not the whole file).
    pub fn from_path(path: &Path) -> Result<ElfInfo, ElfError> {
        let f = std::fs::File::open(path).map_err(ElfError::Io)?;
        ElfInfo::parse(&|off, len| {
            let mut buf = vec![0; len];
            f.read_exact_at(&mut buf, off)?;
            Ok(buf)
        })
    }

    /// The running `wrapguard` binary.
    pub fn own() -> Result<ElfInfo, ElfError> {
        ElfInfo::from_path(Path::new("/proc/self/exe"))
    }

    /// The architecture this code is built for, as an ELF header would say
    /// it (for [`ElfInfo::same_arch`]; needs no `/proc`); `None` for an
    /// architecture not listed here.
    pub fn native() -> Option<ElfInfo> {
        let machine = if cfg!(target_arch = "x86_64") {
            62
        } else if cfg!(target_arch = "aarch64") {
            183
        } else {
            return None;
        };
        Some(ElfInfo {
            class: if cfg!(target_pointer_width = "64") {
                ElfClass::Elf64
            } else {
                ElfClass::Elf32
            },
            little_endian: cfg!(target_endian = "little"),
            kind: ElfType::SharedObject,
            machine,
            interpreter: None,
            dynamic: true,
            go: false,
        })
    }

    /// Statically linked: no program interpreter, so no dynamic loader
    /// runs and `LD_PRELOAD` is never read (static-pie included).
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none()
    }

    /// Whether the program interpreter is musl's (`ld-musl-*`).
    pub fn is_musl(&self) -> bool {
        self.interpreter
            .as_deref()
            .is_some_and(|i| i.contains("ld-musl"))
    }

    /// Same class, byte order and machine: one can load the other.
    pub fn same_arch(&self, other: &ElfInfo) -> bool {
        self.class == other.class
            && self.little_endian == other.little_endian
            && self.machine == other.machine
    }

    /// "64-bit x86-64" and the like.
    pub fn arch(&self) -> String {
        format!("{} {}", self.class, machine_name(self.machine))
    }

    /// Whether the shim cannot enter it but seccomp mode carries it:
    /// statically linked, linked against musl, or Go (all three make
    /// system calls the shim never sees; the kernel sees them all).
    pub fn needs_seccomp(&self) -> bool {
        self.is_static() || self.is_musl() || self.go
    }
}

/// How many bytes of a file decide whether it is a script.
pub const SHEBANG_MAX: usize = 256;
/// Linux follows at most this many nested `#!` interpreters.
pub const MAX_INTERPRETER_DEPTH: usize = 4;

/// The first [`SHEBANG_MAX`] bytes of `f` (fewer if it is shorter): enough
/// to tell an ELF file from a `#!` script.
pub fn read_head(f: &std::fs::File) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; SHEBANG_MAX];
    let mut n = 0;
    while n < head.len() {
        match f.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(head)
}

/// Whether the program at `path`, about to be exec'd by a process the shim
/// carries, needs seccomp mode instead: an ELF file of `own`'s
/// architecture that [`ElfInfo::needs_seccomp`], or a script whose `#!`
/// interpreter (followed as Linux does) is one. Anything else — missing,
/// unreadable, not ELF, another architecture, dynamically linked against
/// glibc — is `false`: the exec goes ahead as it is (the shim enters it,
/// or the kernel reports why it cannot run).
pub fn exec_needs_seccomp(path: &Path, own: &ElfInfo) -> bool {
    let mut file = path.to_path_buf();
    for _ in 0..=MAX_INTERPRETER_DEPTH {
        let Ok(f) = std::fs::File::open(&file) else {
            return false;
        };
        let Ok(head) = read_head(&f) else {
            return false;
        };
        if head.starts_with(b"\x7fELF") {
            return ElfInfo::parse(&|off, len| {
                let mut buf = vec![0; len];
                f.read_exact_at(&mut buf, off)?;
                Ok(buf)
            })
            .is_ok_and(|i| i.same_arch(own) && i.needs_seccomp());
        }
        match shebang(&head) {
            Some((interp, _)) => file = interp,
            None => return false,
        }
    }
    false
}

/// Whether a note area holds Go's build ID note.
fn has_go_note(e: Endian, mut b: &[u8]) -> bool {
    fn pad4(n: usize) -> usize {
        n.div_ceil(4) * 4
    }
    while b.len() >= 12 {
        let (Some(namesz), Some(descsz), Some(kind)) = (e.u32(b, 0), e.u32(b, 4), e.u32(b, 8))
        else {
            return false;
        };
        let (namesz, descsz) = (namesz as usize, descsz as usize);
        let Some(name) = b.get(12..12 + namesz) else {
            return false;
        };
        if kind == NOTE_GO_BUILDID && name.split(|&c| c == 0).next() == Some(b"Go".as_slice()) {
            return true;
        }
        let next = 12 + pad4(namesz) + pad4(descsz);
        match b.get(next..) {
            Some(rest) if next > 12 || !rest.is_empty() => b = rest,
            _ => return false,
        }
    }
    false
}

/// The usual name of an `e_machine` value.
pub fn machine_name(m: u16) -> String {
    match m {
        3 => "i386".into(),
        8 => "MIPS".into(),
        20 => "PowerPC".into(),
        21 => "PowerPC64".into(),
        22 => "s390".into(),
        40 => "ARM".into(),
        62 => "x86-64".into(),
        183 => "AArch64".into(),
        243 => "RISC-V".into(),
        258 => "LoongArch".into(),
        n => format!("machine {n}"),
    }
}

/// Parses a `#!` line: the interpreter and its optional single argument
/// (Linux passes everything after the interpreter as one argument).
pub fn shebang(head: &[u8]) -> Option<(PathBuf, Option<OsString>)> {
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&c| c == b'\n').next()?;
    let line = line.trim_ascii();
    if line.is_empty() {
        return None;
    }
    let (interp, arg) = match line.iter().position(|c| c.is_ascii_whitespace()) {
        Some(i) => (&line[..i], Some(line[i..].trim_ascii())),
        None => (line, None),
    };
    Some((
        PathBuf::from(OsStr::from_bytes(interp)),
        arg.filter(|a| !a.is_empty())
            .map(|a| OsStr::from_bytes(a).to_os_string()),
    ))
}

#[cfg(test)]
mod tests;
