use super::*;

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
fn native_is_the_running_binarys_architecture() {
    let own = ElfInfo::own().expect("reads /proc/self/exe");
    let native = ElfInfo::native().expect("a listed architecture");
    assert!(native.same_arch(&own), "{native:?} vs {own:?}");
}

#[test]
fn own_binary_is_dynamic_and_not_go() {
    let own = ElfInfo::own().expect("reads /proc/self/exe");
    assert!(!own.is_static(), "{own:?}");
    assert!(!own.go);
    assert!(own.same_arch(&own));
}

#[test]
fn exec_decision_follows_scripts_to_their_interpreter() {
    let dir = std::env::temp_dir().join(format!("wg-exec-decision-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let own = ElfBuilder::new(true, 62).build();
    let own_info = ElfInfo::from_bytes(&own).expect("parses");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    let dynamic = write("dynamic", &own);
    let mut b = ElfBuilder::new(true, 62);
    b.interp = None;
    let static_ = write("static", &b.build());
    let mut b = ElfBuilder::new(true, 62);
    b.interp = Some("/lib/ld-musl-x86_64.so.1");
    let musl = write("musl", &b.build());
    let mut b = ElfBuilder::new(true, 62);
    b.go_note = true;
    let go = write("go", &b.build());
    let mut b = ElfBuilder::new(true, 183);
    b.interp = None;
    let other_arch = write("aarch64-static", &b.build());
    let script = write(
        "script",
        format!("#!{} -x\necho hi\n", static_.display()).as_bytes(),
    );
    let script_of_script = write("script2", format!("#!{}\n", script.display()).as_bytes());
    let dyn_script = write("script3", format!("#!{}\n", dynamic.display()).as_bytes());
    let loop_script = dir.join("loop");
    std::fs::write(&loop_script, format!("#!{}\n", loop_script.display())).expect("write");

    for (p, want) in [
        (&dynamic, false),
        (&static_, true),
        (&musl, true),
        (&go, true),
        (&other_arch, false),
        (&script, true),
        (&script_of_script, true),
        (&dyn_script, false),
        (&loop_script, false),
        (&dir.join("missing"), false),
    ] {
        assert_eq!(exec_needs_seccomp(p, &own_info), want, "{}", p.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
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
