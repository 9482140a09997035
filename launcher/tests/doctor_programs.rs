//! `wrapguard --doctor PROGRAM` on programs the shim cannot enter
//! (static, Go, setuid, 32-bit, missing, not executable) and on ones it
//! can: which mode carries each, or why none does. Assertions are on the
//! printed lines.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use wrapguard_testnet::{lines_at, wrapguard_direct, TempDir};

/// `doctor PROGRAM` output for a program file.
fn doctor_program(p: &Path) -> String {
    doctor_program_with(p, &[])
}

/// `doctor [flags] PROGRAM` output for a program file.
fn doctor_program_with(p: &Path, flags: &[&str]) -> String {
    let mut args: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
    args.push(OsStr::new("--doctor"));
    args.push(p.as_os_str());
    let out = wrapguard_direct(&args);
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let fails = !lines_at(&t, "fail").is_empty();
    assert_eq!(out.status.code(), Some(i32::from(fails)), "{t}");
    t
}

#[test]
fn doctor_refuses_a_static_binary() {
    let tmp = TempDir::new();
    let src = tmp.write(
        "hello.c",
        "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n",
    );
    let bin = tmp.join("hello-static");
    let built = Command::new("gcc")
        .args(["-static", "-o"])
        .arg(&bin)
        .arg(&src)
        .output();
    if !built.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: doctor_refuses_a_static_binary: gcc -static failed (gcc or static libc missing: apt-get install gcc libc6-dev)");
        return;
    }
    // The shim alone cannot carry it: refused.
    let t = doctor_program_with(&bin, &["--mode=preload"]);
    assert!(
        t.contains(&format!(
            "fail  {} is statically linked (no program interpreter)",
            bin.display()
        )),
        "{t}"
    );
    assert!(t.contains("— use a dynamically linked build"), "{t}");
    assert!(
        t.contains(&format!("fail  mode for {}: none", bin.display())),
        "{t}"
    );
    // auto (the default) and seccomp: seccomp mode carries it.
    for flags in [&[][..], &["--mode=seccomp"][..]] {
        let t = doctor_program_with(&bin, flags);
        assert!(
            t.contains(&format!(
                "ok    {} is statically linked (no program interpreter): the shim cannot enter it, seccomp mode carries it",
                bin.display()
            )),
            "{t}"
        );
        assert!(
            t.contains(&format!("ok    mode for {}: seccomp", bin.display())),
            "{t}"
        );
        assert!(lines_at(&t, "fail").is_empty(), "{t}");
    }
    // The same source linked dynamically is fine.
    let dynbin = tmp.join("hello-dyn");
    let st = Command::new("gcc")
        .arg("-o")
        .arg(&dynbin)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success());
    let t = doctor_program(&dynbin);
    assert!(t.contains("the shim can enter it"), "{t}");
    assert!(
        t.contains(&format!("ok    mode for {}: preload", dynbin.display())),
        "{t}"
    );
    assert!(lines_at(&t, "fail").is_empty(), "{t}");
    // Forced into seccomp mode, a dynamic program gets it too.
    let t = doctor_program_with(&dynbin, &["--mode=seccomp"]);
    assert!(
        t.contains(&format!("ok    mode for {}: seccomp", dynbin.display())),
        "{t}"
    );
}

#[test]
fn doctor_refuses_go_setuid_32_bit_missing_and_non_executable() {
    let tmp = TempDir::new();
    // Go: wireguard-go is one (skip that part if it is not installed).
    if let Ok(go) = inspect_path("wireguard-go") {
        let t = doctor_program_with(&go, &["--mode=preload"]);
        assert!(
            t.contains(&format!("fail  {} is a Go program", go.display())),
            "{t}"
        );
        let t = doctor_program(&go);
        assert!(
            t.contains(&format!(
                "ok    {} is a Go program: the shim cannot enter it, seccomp mode carries it",
                go.display()
            )),
            "{t}"
        );
        assert!(
            t.contains(&format!("ok    mode for {}: seccomp", go.display())),
            "{t}"
        );
    } else {
        eprintln!("SKIPPED (part): wireguard-go not installed, no Go binary to check");
    }

    // 32-bit: a minimal i386 ELF header asking for /lib/ld-linux.so.2.
    let elf32 = tmp.join("prog32");
    std::fs::write(&elf32, elf32_image()).expect("write");
    std::fs::set_permissions(&elf32, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let t = doctor_program(&elf32);
    assert!(
        t.contains(&format!(
            "fail  {} is 32-bit i386, the shim is 64-bit",
            elf32.display()
        )),
        "{t}"
    );
    // Neither mode carries it, auto or forced.
    for flags in [&[][..], &["--mode=seccomp"][..]] {
        let t = doctor_program_with(&elf32, flags);
        assert!(
            t.contains(&format!("fail  mode for {}: none", elf32.display())),
            "{t}"
        );
    }

    // Missing, on PATH and by path.
    let t = doctor_program(Path::new("no-such-program-xyz"));
    assert!(
        t.contains("fail  command no-such-program-xyz: no-such-program-xyz not found on PATH"),
        "{t}"
    );
    let t = doctor_program(&tmp.join("absent"));
    assert!(t.contains("does not exist"), "{t}");

    // Not executable.
    let script = tmp.write("s.sh", "#!/bin/sh\necho hi\n");
    let t = doctor_program(&script);
    assert!(
        t.contains(&format!(
            "fail  {} is not executable (mode 0600)  — chmod +x",
            script.display()
        )),
        "{t}"
    );
    // A script whose interpreter is missing.
    let script2 = tmp.join("s2.sh");
    std::fs::write(&script2, "#!/no/such/interp\n").expect("write");
    std::fs::set_permissions(&script2, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let t = doctor_program(&script2);
    assert!(t.contains("fail  /no/such/interp does not exist"), "{t}");
    // A good script: followed to its interpreter.
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let t = doctor_program(&script);
    assert!(t.contains("is a script for /bin/sh"), "{t}");
    assert!(lines_at(&t, "fail").is_empty(), "{t}");

    // setuid to another user (needs root to chown).
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let su = tmp.join("true-setuid");
        std::fs::copy("/bin/true", &su).expect("copy /bin/true");
        std::os::unix::fs::chown(&su, Some(65534), None).expect("chown");
        std::fs::set_permissions(&su, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
        let t = doctor_program(&su);
        assert!(
            t.contains(&format!(
                "fail  {} is set-user-ID: the loader ignores LD_PRELOAD for it",
                su.display()
            )),
            "{t}"
        );
    } else {
        eprintln!("SKIPPED (part): not root, cannot make a setuid file of another user");
    }
}

fn inspect_path(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// ELF32 little-endian i386 executable header with one PT_INTERP.
fn elf32_image() -> Vec<u8> {
    let interp = b"/lib/ld-linux.so.2\0";
    let mut b = vec![0u8; 84];
    b[..7].copy_from_slice(b"\x7fELF\x01\x01\x01");
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
    b[40..42].copy_from_slice(&52u16.to_le_bytes());
    b[42..44].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
    b[44..46].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    b[52..56].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
    b[56..60].copy_from_slice(&84u32.to_le_bytes());
    b[68..72].copy_from_slice(&(interp.len() as u32).to_le_bytes());
    b.extend_from_slice(interp);
    b
}
