//! What a program file is, as far as `LD_PRELOAD` is concerned: found on
//! `PATH` or not, executable or not, a script (and its interpreter) or an
//! ELF file, and for ELF files the facts that decide whether the dynamic
//! loader will load our shim into it — class (32/64-bit), machine, the
//! loader it asks for (`PT_INTERP`; none means statically linked), Go
//! (which makes its socket calls without libc), set-user-ID/set-group-ID
//! bits and file capabilities (secure execution: the loader ignores
//! `LD_PRELOAD` paths).
//!
//! Layers, so each can be used on its own (the doctor, the self-test and
//! the launcher's refusal of programs the shim cannot enter):
//! * [`ElfInfo::parse`] — sans-IO: reads the header, program headers,
//!   section headers and notes through a `read_at` closure, every offset
//!   and length checked (a truncated or hostile file is an error, never a
//!   panic); [`ElfInfo::from_bytes`] for a buffer, [`ElfInfo::from_path`]
//!   for a file.
//! * [`resolve_command`] — `PATH` lookup as `execvp` does it.
//! * [`Program::inspect`] — one file: ELF, script with `#!`, or other.
//! * [`shim_entry`] — the verdict: a list of [`Check`]s saying whether the
//!   shim can enter the program and, if not, what to do.
//!
//! ELF layout: the System V gABI, "ELF Header", "Program Header",
//! "Sections" and "Note Section"; Go's build ID note is
//! `cmd/internal/buildid` (name `"Go"`, type 4), its build info section
//! `.go.buildinfo` (`debug/buildinfo`).

use crate::report::{Check, Level};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
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
/// How many bytes of a file decide whether it is a script.
const SHEBANG_MAX: usize = 256;
/// Linux follows at most this many nested `#!` interpreters.
const MAX_INTERPRETER_DEPTH: usize = 4;

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

/// Why a command could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The command was empty.
    Empty,
    /// No file of that name in any `PATH` directory.
    NotOnPath(OsString),
    /// A path (with a `/`) that does not exist.
    Missing(PathBuf),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Empty => f.write_str("empty command"),
            ResolveError::NotOnPath(n) => {
                write!(f, "{} not found on PATH", n.to_string_lossy())
            }
            ResolveError::Missing(p) => write!(f, "{} does not exist", p.display()),
        }
    }
}

impl std::error::Error for ResolveError {}

/// Finds the file `execvp` would run for `name`: a name with a `/` is
/// used as it is; otherwise the first `PATH` entry holding a regular file
/// of that name that we may execute (or, failing that, the first one that
/// exists, so the caller can say it is not executable). `path` is the
/// `PATH` value (`None`: the default `/usr/local/bin:/usr/bin:/bin`).
pub fn resolve_command(name: &OsStr, path: Option<&OsStr>) -> Result<PathBuf, ResolveError> {
    if name.is_empty() {
        return Err(ResolveError::Empty);
    }
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        return if p.exists() {
            Ok(p)
        } else {
            Err(ResolveError::Missing(p))
        };
    }
    let default = OsStr::new("/usr/local/bin:/usr/bin:/bin");
    let mut found_not_exec = None;
    for dir in std::env::split_paths(path.unwrap_or(default)) {
        // An empty entry means the current directory.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let cand = dir.join(name);
        if let Ok(m) = std::fs::metadata(&cand) {
            if m.is_file() {
                if executable_by_us(&cand) {
                    return Ok(cand);
                }
                found_not_exec.get_or_insert(cand);
            }
        }
    }
    found_not_exec.ok_or_else(|| ResolveError::NotOnPath(name.to_os_string()))
}

/// `access(path, X_OK)` for the real user (as `execve` will check).
pub fn executable_by_us(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
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

/// What a program file is.
#[derive(Debug)]
pub enum ProgramKind {
    /// An ELF file.
    Elf(ElfInfo),
    /// A script run by `interpreter` (from its `#!` line).
    Script {
        /// The interpreter path as written.
        interpreter: PathBuf,
        /// The optional argument on the `#!` line (e.g. `python3` for `/usr/bin/env python3`).
        arg: Option<OsString>,
    },
    /// Neither (the kernel refuses it; shells run such files as `sh` scripts).
    Other,
    /// Starts with `\x7fELF` but could not be parsed.
    BadElf(String),
}

/// One program file and the facts about it.
#[derive(Debug)]
pub struct Program {
    /// Its path.
    pub path: PathBuf,
    /// Permission bits, including set-user-ID (0o4000) and set-group-ID (0o2000).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Whether we may execute it.
    pub executable: bool,
    /// Whether it carries file capabilities (`security.capability`).
    pub capabilities: bool,
    /// ELF, script or other.
    pub kind: ProgramKind,
}

impl Program {
    /// Reads the metadata and the first bytes of `path`.
    pub fn inspect(path: &Path) -> io::Result<Program> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let f = std::fs::File::open(path)?;
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
        let kind = if head.starts_with(b"\x7fELF") {
            match ElfInfo::from_path(path) {
                Ok(i) => ProgramKind::Elf(i),
                Err(e) => ProgramKind::BadElf(e.to_string()),
            }
        } else if let Some((interpreter, arg)) = shebang(&head) {
            ProgramKind::Script { interpreter, arg }
        } else {
            ProgramKind::Other
        };
        Ok(Program {
            path: path.to_path_buf(),
            mode: meta.permissions().mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            executable: executable_by_us(path),
            capabilities: has_file_capabilities(path),
            kind,
        })
    }

    /// Whether running it is "secure execution" for us (`AT_SECURE`): the
    /// loader then ignores `LD_PRELOAD` entries with a `/`.
    pub fn secure_execution(&self) -> Option<&'static str> {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        // The new effective id differs from the real one: AT_SECURE.
        if self.mode & 0o4000 != 0 && self.uid != uid {
            Some("set-user-ID")
        } else if self.mode & 0o2000 != 0 && self.gid != gid {
            Some("set-group-ID")
        } else if self.capabilities && uid != 0 {
            Some("file capabilities")
        } else {
            None
        }
    }
}

/// Whether `path` has a `security.capability` extended attribute.
fn has_file_capabilities(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let name = c"security.capability";
    // SAFETY: both strings are NUL-terminated and live through the call; a
    // null buffer with size 0 only asks for the attribute's length.
    let n = unsafe { libc::getxattr(c.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    n > 0
}

/// Whether the shim can enter the program `argv0` (resolved on `path`),
/// following `#!` interpreters; `own` is the shim's architecture (the
/// running binary's). Each line is a [`Check`]; any [`Level::Fail`] means
/// the program's connections would not go through the tunnel.
pub fn shim_entry(argv0: &OsStr, path: Option<&OsStr>, own: &ElfInfo) -> Vec<Check> {
    let mut out = Vec::new();
    let shown = argv0.to_string_lossy().into_owned();
    let resolved = match resolve_command(argv0, path) {
        Ok(p) => p,
        Err(e) => {
            out.push(Check::fail(
                format!("command {shown}: {e}"),
                "check the spelling, install it, or give its full path",
            ));
            return out;
        }
    };
    if resolved.as_os_str() != argv0 {
        out.push(Check::ok(format!(
            "command {shown} is {}",
            resolved.display()
        )));
    }
    let mut file = resolved;
    for _ in 0..MAX_INTERPRETER_DEPTH {
        match entry_of_file(&file, own, &mut out) {
            Next::Done => return out,
            Next::Interpreter(interp, arg) => {
                // `#!/usr/bin/env NAME`: the program is NAME on PATH.
                let is_env = interp.file_name() == Some(OsStr::new("env"));
                match (is_env, arg) {
                    (true, Some(a)) => {
                        let name = a
                            .to_string_lossy()
                            .split_whitespace()
                            .find(|w| !w.starts_with('-'))
                            .map(OsString::from);
                        let Some(name) = name else {
                            return out;
                        };
                        match resolve_command(&name, path) {
                            Ok(p) => {
                                out.push(Check::ok(format!(
                                    "{} runs {} (through env)",
                                    file.display(),
                                    p.display()
                                )));
                                file = p;
                            }
                            Err(e) => {
                                out.push(Check::fail(
                                    format!("interpreter of {}: {e}", file.display()),
                                    "install the interpreter its #! line names",
                                ));
                                return out;
                            }
                        }
                    }
                    _ => file = interp,
                }
            }
        }
    }
    out.push(Check::warn(
        format!("{}: too many nested #! interpreters", file.display()),
        "the kernel refuses more than 4 levels; run the interpreter directly",
    ));
    out
}

/// What [`entry_of_file`] found.
enum Next {
    /// Verdict complete.
    Done,
    /// A script: look at its interpreter next.
    Interpreter(PathBuf, Option<OsString>),
}

/// How the launcher carries a program (see [`choose_mode`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModeChoice {
    /// The LD_PRELOAD shim can enter it.
    Preload,
    /// Seccomp user notification; `why`: the reason the shim cannot
    /// (`None` when forced).
    Seccomp {
        /// Why the shim cannot enter it, if that is the reason.
        why: Option<String>,
    },
    /// Neither mode carries it: this failed check says why.
    Refuse(Check),
}

/// Whether seccomp mode carries a program the shim cannot enter for the
/// reason in `c` (statically linked, musl, Go: the kernel sees their
/// system calls all the same).
fn seccomp_carries(c: &Check) -> bool {
    c.what.contains(STATIC_WHAT) || c.what.contains(MUSL_WHAT) || c.what.contains(GO_WHAT)
}

/// The interception mode for `argv0` (resolved on `path`) under `--mode`
/// `forced` (`None`: auto). Programs that cannot be launched at all get
/// the mode anyway (launching reports the error); set-user-ID programs and
/// other architectures are refused by both modes.
pub fn choose_mode(
    argv0: &OsStr,
    path: Option<&OsStr>,
    own: &ElfInfo,
    forced: Option<crate::cli::Mode>,
) -> ModeChoice {
    use crate::cli::Mode;
    let launchable = |c: &Check| {
        c.what.starts_with("command ")
            || c.what.ends_with("does not exist")
            || c.what.starts_with("cannot read ")
            || c.what.contains(" is not executable ")
            || c.what.contains("neither an ELF program")
            || c.what.starts_with("interpreter of ")
    };
    let fails: Vec<Check> = shim_entry(argv0, path, own)
        .into_iter()
        .filter(|c| c.level == Level::Fail && !launchable(c))
        .collect();
    match forced {
        Some(Mode::Preload) => match fails.into_iter().next() {
            Some(c) => ModeChoice::Refuse(c),
            None => ModeChoice::Preload,
        },
        Some(Mode::Seccomp) => match fails.into_iter().find(|c| !seccomp_carries(c)) {
            Some(c) => ModeChoice::Refuse(c),
            None => ModeChoice::Seccomp { why: None },
        },
        Some(Mode::Auto) | None => {
            if fails.is_empty() {
                ModeChoice::Preload
            } else if let Some(c) = fails.iter().find(|c| !seccomp_carries(c)) {
                ModeChoice::Refuse(c.clone())
            } else {
                ModeChoice::Seccomp {
                    why: fails.first().map(|c| c.what.clone()),
                }
            }
        }
    }
}

/// The doctor's view of a program: [`shim_entry`]'s checks — with what
/// seccomp mode carries shown as fine when the program gets that mode —
/// and one line naming the mode `wrapguard --mode=forced` (`None`: auto)
/// would use. `seccomp_unsupported`: why seccomp mode cannot run on this
/// machine, if it cannot.
pub fn mode_checks(
    argv0: &OsStr,
    path: Option<&OsStr>,
    own: &ElfInfo,
    forced: Option<crate::cli::Mode>,
    seccomp_unsupported: Option<String>,
) -> Vec<Check> {
    let mut checks = shim_entry(argv0, path, own);
    let shown = argv0.to_string_lossy();
    match choose_mode(argv0, path, own, forced) {
        ModeChoice::Preload => {
            if !checks.iter().any(|c| c.level == Level::Fail) {
                checks.push(Check::ok(format!(
                    "mode for {shown}: preload (the LD_PRELOAD shim carries its socket calls)"
                )));
            }
        }
        ModeChoice::Seccomp { .. } => {
            for c in checks.iter_mut() {
                if c.level == Level::Fail && seccomp_carries(c) {
                    *c = Check::ok(format!(
                        "{}: the shim cannot enter it, seccomp mode carries it",
                        carried_fact(&c.what)
                    ));
                }
            }
            checks.push(match seccomp_unsupported {
                None => Check::ok(format!(
                    "mode for {shown}: seccomp (its socket calls are trapped by a seccomp filter)"
                )),
                Some(e) => Check::fail(
                    format!("mode for {shown}: seccomp, but {e}"),
                    "run it on a newer kernel, or use a dynamically linked glibc build with --mode=preload",
                ),
            });
        }
        ModeChoice::Refuse(_) => checks.push(Check::fail(
            format!("mode for {shown}: none (wrapguard refuses to run it: see above)"),
            match forced {
                Some(crate::cli::Mode::Preload) => "drop --mode=preload (auto runs static, Go and musl programs in seccomp mode), or fix what is above",
                _ => "fix what is above",
            },
        )),
    }
    checks
}

/// The fact of a check that seccomp mode carries, without the consequence
/// that no longer holds ("X is statically linked (no program interpreter)").
fn carried_fact(what: &str) -> &str {
    for p in [STATIC_WHAT, MUSL_WHAT, GO_WHAT] {
        if let Some(i) = what.find(p) {
            return what[..i + p.len()].trim_end_matches(": ");
        }
    }
    what
}

/// Phrases of the [`Check`]s that name what seccomp mode can carry.
const STATIC_WHAT: &str = " is statically linked (no program interpreter)";
const MUSL_WHAT: &str = " is linked against musl libc";
const GO_WHAT: &str = " is a Go program: ";

fn entry_of_file(file: &Path, own: &ElfInfo, out: &mut Vec<Check>) -> Next {
    let shown = file.display();
    let p = match Program::inspect(file) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            out.push(Check::fail(
                format!("{shown} does not exist"),
                "install it or fix the path (for a script: its #! line)",
            ));
            return Next::Done;
        }
        Err(e) => {
            out.push(Check::fail(
                format!("cannot read {shown}: {e}"),
                "give a readable regular file",
            ));
            return Next::Done;
        }
    };
    let shown = p.path.display();
    if !p.executable {
        out.push(Check::fail(
            format!("{shown} is not executable (mode {:04o})", p.mode & 0o7777),
            format!("chmod +x {shown}"),
        ));
        return Next::Done;
    }
    if let Some(why) = p.secure_execution() {
        out.push(Check::fail(
            format!("{shown} is {why}: the loader ignores LD_PRELOAD for it"),
            "run an unprivileged copy of the program (without the bit/capabilities), or run it as its owner",
        ));
    }
    match p.kind {
        ProgramKind::Script { interpreter, arg } => {
            out.push(Check::ok(format!(
                "{shown} is a script for {}",
                interpreter.display()
            )));
            return Next::Interpreter(interpreter, arg);
        }
        ProgramKind::Other => out.push(Check::fail(
            format!("{shown} is neither an ELF program nor a #! script"),
            "add a #! line, or run it through its interpreter (e.g. -- sh FILE)",
        )),
        ProgramKind::BadElf(e) => out.push(Check::fail(
            format!("{shown}: {e}"),
            "reinstall the program",
        )),
        ProgramKind::Elf(info) => elf_entry(&shown.to_string(), &info, own, out),
    }
    Next::Done
}

fn elf_entry(shown: &str, info: &ElfInfo, own: &ElfInfo, out: &mut Vec<Check>) {
    let before = out.len();
    if !info.same_arch(own) {
        out.push(Check::fail(
            format!(
                "{shown} is {}, the shim is {}: the loader will not load it",
                info.arch(),
                own.arch()
            ),
            format!("use a {} build of the program", own.arch()),
        ));
    }
    if info.is_static() {
        out.push(Check::fail(
            format!("{shown}{STATIC_WHAT}: LD_PRELOAD cannot enter it, its traffic would bypass the tunnel"),
            "use a dynamically linked build of the program (e.g. your distribution's package)",
        ));
    } else if info.is_musl() {
        out.push(Check::fail(
            format!("{shown}{MUSL_WHAT}; the shim is built for glibc"),
            "use a glibc build of the program",
        ));
    }
    if info.go {
        out.push(Check::fail(
            format!("{shown}{GO_WHAT}Go makes its socket calls without libc, so the shim cannot see them"),
            "no LD_PRELOAD tool can carry it; use a kernel WireGuard interface (wg-quick) or the program's proxy settings",
        ));
    }
    if out.len() == before {
        out.push(Check::ok(format!(
            "{shown} is a dynamically linked {} program (loader {}): the shim can enter it",
            info.arch(),
            info.interpreter.as_deref().unwrap_or("?")
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Level;

    /// A minimal ELF image: header, program headers, optional sections.
    pub(crate) struct ElfBuilder {
        class64: bool,
        le: bool,
        machine: u16,
        interp: Option<&'static str>,
        go_note: bool,
        go_section: bool,
    }

    impl ElfBuilder {
        pub(crate) fn new(class64: bool, machine: u16) -> Self {
            ElfBuilder {
                class64,
                le: true,
                machine,
                interp: Some("/lib64/ld-linux-x86-64.so.2"),
                go_note: false,
                go_section: false,
            }
        }

        fn put(&self, b: &mut Vec<u8>, at: usize, v: u64, len: usize) {
            if b.len() < at + len {
                b.resize(at + len, 0);
            }
            let bytes = if self.le {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            let s = if self.le {
                &bytes[..len]
            } else {
                &bytes[8 - len..]
            };
            b[at..at + len].copy_from_slice(s);
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let l = if self.class64 { &LAYOUT64 } else { &LAYOUT32 };
            let w = if self.class64 { 8 } else { 4 };
            let mut b = vec![0u8; l.header_len as usize];
            b[..4].copy_from_slice(b"\x7fELF");
            b[4] = if self.class64 { 2 } else { 1 };
            b[5] = if self.le { 1 } else { 2 };
            b[6] = 1;
            self.put(&mut b, 16, 2, 2);
            self.put(&mut b, 18, u64::from(self.machine), 2);
            // Data area after the headers: interp string, note, names.
            let nph = usize::from(self.interp.is_some()) + usize::from(self.go_note) + 1;
            let phoff = l.header_len as usize;
            let data = phoff + nph * l.ph_len as usize;
            self.put(&mut b, l.phoff.0, phoff as u64, w);
            self.put(&mut b, l.phentsize, l.ph_len, 2);
            self.put(&mut b, l.phnum, nph as u64, 2);
            let mut blobs: Vec<(u32, Vec<u8>)> = Vec::new();
            if let Some(i) = self.interp {
                let mut s = i.as_bytes().to_vec();
                s.push(0);
                blobs.push((PT_INTERP, s));
            }
            if self.go_note {
                let mut n = Vec::new();
                let mut tmp = Vec::new();
                self.put(&mut tmp, 0, 4, 4);
                self.put(&mut tmp, 4, 8, 4);
                self.put(&mut tmp, 8, u64::from(NOTE_GO_BUILDID), 4);
                n.extend_from_slice(&tmp);
                n.extend_from_slice(b"Go\0\0buildid!");
                blobs.push((PT_NOTE, n));
            }
            blobs.push((PT_DYNAMIC, vec![0; 16]));
            b.resize(data, 0);
            let mut off = data;
            let mut entries = Vec::new();
            for (kind, blob) in &blobs {
                entries.push((*kind, off, blob.len()));
                b.extend_from_slice(blob);
                off += blob.len();
            }
            for (i, (kind, o, len)) in entries.into_iter().enumerate() {
                let at = phoff + i * l.ph_len as usize;
                self.put(&mut b, at, u64::from(kind), 4);
                if self.class64 {
                    self.put(&mut b, at + 8, o as u64, 8);
                    self.put(&mut b, at + 32, len as u64, 8);
                } else {
                    self.put(&mut b, at + 4, o as u64, 4);
                    self.put(&mut b, at + 16, len as u64, 4);
                }
            }
            if self.go_section {
                // Sections: null, .shstrtab, .go.buildinfo.
                let names = b"\0.shstrtab\0.go.buildinfo\0".to_vec();
                let names_off = b.len();
                b.extend_from_slice(&names);
                let shoff = b.len();
                let sl = l.sh_len as usize;
                b.resize(shoff + 3 * sl, 0);
                let sec = |b: &mut Vec<u8>, i: usize, name: u64, off: u64, size: u64| {
                    let at = shoff + i * sl;
                    self.put(b, at, name, 4);
                    if self.class64 {
                        self.put(b, at + 24, off, 8);
                        self.put(b, at + 32, size, 8);
                    } else {
                        self.put(b, at + 16, off, 4);
                        self.put(b, at + 20, size, 4);
                    }
                };
                sec(&mut b, 1, 1, names_off as u64, names.len() as u64);
                sec(&mut b, 2, 11, 0, 0);
                self.put(&mut b, l.shoff.0, shoff as u64, w);
                self.put(&mut b, l.shentsize, l.sh_len, 2);
                self.put(&mut b, l.shnum, 3, 2);
                self.put(&mut b, l.shstrndx, 1, 2);
            }
            b
        }
    }

    #[test]
    fn parses_dynamic_64_bit() {
        let i = ElfInfo::from_bytes(&ElfBuilder::new(true, 62).build()).expect("parses");
        assert_eq!(i.class, ElfClass::Elf64);
        assert_eq!(i.machine, 62);
        assert_eq!(i.kind, ElfType::Executable);
        assert_eq!(
            i.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert!(i.dynamic && !i.go && !i.is_static() && !i.is_musl());
        assert_eq!(i.arch(), "64-bit x86-64");
    }

    #[test]
    fn parses_32_bit_big_endian_and_static() {
        let mut b = ElfBuilder::new(false, 20);
        b.le = false;
        b.interp = None;
        let i = ElfInfo::from_bytes(&b.build()).expect("parses");
        assert_eq!(i.class, ElfClass::Elf32);
        assert!(!i.little_endian);
        assert_eq!(i.machine, 20);
        assert!(i.is_static());
        let own = ElfInfo::from_bytes(&ElfBuilder::new(true, 62).build()).expect("parses");
        assert!(!i.same_arch(&own));
    }

    #[test]
    fn finds_go_by_note_and_by_section() {
        for (note, section, class64) in [
            (true, false, true),
            (false, true, true),
            (false, true, false),
        ] {
            let mut b = ElfBuilder::new(class64, 62);
            b.go_note = note;
            b.go_section = section;
            let i = ElfInfo::from_bytes(&b.build()).expect("parses");
            assert!(i.go, "note {note} section {section} 64 {class64}");
        }
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        assert!(matches!(
            ElfInfo::from_bytes(b"#!/bin/sh\n"),
            Err(ElfError::NotElf)
        ));
        assert!(matches!(ElfInfo::from_bytes(b""), Err(ElfError::NotElf)));
        let good = {
            let mut b = ElfBuilder::new(true, 62);
            b.go_section = true;
            b.build()
        };
        // Every truncation and many single-byte corruptions: no panic.
        for n in 0..good.len() {
            let _ = ElfInfo::from_bytes(&good[..n]);
        }
        for i in 0..good.len() {
            for v in [0u8, 0xff, 0x80, 7] {
                let mut c = good.clone();
                c[i] = v;
                let _ = ElfInfo::from_bytes(&c);
            }
        }
        let mut bad_class = good.clone();
        bad_class[4] = 9;
        assert!(matches!(
            ElfInfo::from_bytes(&bad_class),
            Err(ElfError::Malformed("class"))
        ));
    }

    #[test]
    fn own_binary_is_dynamic_and_not_go() {
        let own = ElfInfo::own().expect("reads /proc/self/exe");
        assert!(!own.is_static(), "{own:?}");
        assert!(!own.go);
        assert!(own.same_arch(&own));
    }

    #[test]
    fn shebang_lines() {
        assert_eq!(
            shebang(b"#!/bin/sh\necho"),
            Some((PathBuf::from("/bin/sh"), None))
        );
        assert_eq!(
            shebang(b"#! /usr/bin/env  python3 -u \n"),
            Some((
                PathBuf::from("/usr/bin/env"),
                Some(OsString::from("python3 -u"))
            ))
        );
        assert_eq!(shebang(b"#!\n"), None);
        assert_eq!(shebang(b"echo hi"), None);
    }

    #[test]
    fn resolves_on_path() {
        let sh = resolve_command(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        )
        .expect("sh is on PATH");
        assert!(sh.ends_with("sh"));
        assert_eq!(
            resolve_command(OsStr::new("no-such-cmd-xyz"), Some(OsStr::new("/bin"))),
            Err(ResolveError::NotOnPath("no-such-cmd-xyz".into()))
        );
        assert!(matches!(
            resolve_command(OsStr::new("./no/such"), None),
            Err(ResolveError::Missing(_))
        ));
        assert_eq!(
            resolve_command(OsStr::new(""), None),
            Err(ResolveError::Empty)
        );
    }

    #[test]
    fn verdicts_for_scripts_and_missing() {
        let own = ElfInfo::own().expect("own");
        let dir = std::env::temp_dir().join(format!("wg-inspect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let script = dir.join("s.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let v = shim_entry(script.as_os_str(), None, &own);
        let text: Vec<String> = v.iter().map(|c| c.to_string()).collect();
        assert!(v.iter().all(|c| c.level != Level::Fail), "{text:#?}");
        assert!(
            text.iter().any(|l| l.contains("script for /bin/sh")),
            "{text:#?}"
        );
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let v = shim_entry(script.as_os_str(), None, &own);
        // Root may execute anything with any x bit; 0644 has none.
        assert!(
            v.iter()
                .any(|c| c.level == Level::Fail && c.to_string().contains("not executable")),
            "{v:#?}"
        );
        let v = shim_entry(
            OsStr::new("no-such-cmd-xyz"),
            Some(OsStr::new("/bin")),
            &own,
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].level, Level::Fail);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
