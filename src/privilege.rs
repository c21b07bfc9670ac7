//! Least privilege: once the capture socket is open, the sensor gives up root and every
//! capability, as scanlogd does. It keeps the open socket (a file descriptor needs no
//! privilege to read) and can still write its data directory, which belongs to its user.
//!
//! Capabilities belong to each thread: call [`drop_to`] once, after every privileged resource
//! is open and before any other thread is started. (The uid and gid changes themselves reach
//! every thread: libc applies them process-wide.)

use std::ffi::CString;
use std::io;

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets, passed as two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The capability a capture socket needs (linux/capability.h).
const CAP_NET_RAW: libc::c_ulong = 13;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops every privilege of the process, for good.
///
/// Running as root (real or effective uid 0): looks `user` up in the user database, leaves no
/// supplementary group, takes the user's primary group and then its uid (real, effective and
/// saved ids alike), with `PR_SET_KEEPCAPS` off so that the kernel clears every capability on
/// the change of uid. Then it checks the result: the real and effective uid and gid are the
/// user's, `setuid(0)` fails, and no capability is left in the effective, permitted,
/// inheritable or ambient sets.
///
/// Not running as root (systemd starting the sensor as its own user with `CAP_NET_RAW`, say):
/// `user` is not looked up and the uid stays as it is; the capabilities the process holds are
/// cleared and the same check is made.
///
/// Either way it also sets `no_new_privs`, so nothing executed later could gain privileges.
///
/// Errors (the caller should stop, not go on privileged): the user does not exist (the message
/// names it), the user is root or has group 0, or a system call failed (the message names the
/// call and the OS error).
pub fn drop_to(user: &str) -> Result<(), String> {
    // SAFETY: getuid/geteuid cannot fail and touch no memory.
    let root = unsafe { libc::getuid() == 0 || libc::geteuid() == 0 };
    if root {
        let (uid, gid) = lookup(user)?;
        if uid == 0 {
            return Err(format!(
                "user '{user}' is root (uid 0): RUN_AS must name an unprivileged user"
            ));
        }
        if gid == 0 {
            return Err(format!(
                "user '{user}' has group 0 (root) as its primary group: give it a group of its own"
            ));
        }
        // SAFETY: plain system calls with integer arguments (setgroups with an empty list, for
        // which a null pointer is allowed); every result is checked.
        unsafe {
            check(
                prctl(libc::PR_SET_KEEPCAPS, 0, 0),
                "prctl(PR_SET_KEEPCAPS, 0)",
            )?;
            check(libc::setgroups(0, std::ptr::null()), "setgroups([])")?;
            check(libc::setgid(gid), &format!("setgid({gid}) for '{user}'"))?;
            check(libc::setuid(uid), &format!("setuid({uid}) for '{user}'"))?;
        }
        verify_ids(user, uid, gid)?;
    }
    clear_capabilities()?;
    check(
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0),
        "prctl(PR_SET_NO_NEW_PRIVS, 1)",
    )?;
    verify_no_capabilities()?;
    // SAFETY: setuid(0) must fail now; if it does not, we are root again and say so.
    if unsafe { libc::setuid(0) } == 0 {
        return Err("setuid(0) still succeeds after dropping privileges".into());
    }
    Ok(())
}

/// The uid and primary gid of `user`, from the user database (`/etc/passwd` for a static musl
/// build).
pub fn lookup(user: &str) -> Result<(libc::uid_t, libc::gid_t), String> {
    let name = CString::new(user)
        .map_err(|_| format!("user name '{}' contains a NUL byte", user.escape_debug()))?;
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids); it is only
        // read after getpwnam_r has filled it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and buf.len() is its true length; the
        // strings pwd points to live in buf, which we do not read.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "cannot look up user '{user}': {}",
                io::Error::from_raw_os_error(rc)
            ));
        }
        if found.is_null() {
            return Err(format!(
                "user '{user}' does not exist: create it (useradd --system --user-group \
                 --no-create-home {user}) or set RUN_AS to an existing unprivileged user"
            ));
        }
        return Ok((pwd.pw_uid, pwd.pw_gid));
    }
}

/// Checks that the process is now `uid`:`gid` through and through, with no other group.
fn verify_ids(user: &str, uid: libc::uid_t, gid: libc::gid_t) -> Result<(), String> {
    let (mut ruid, mut euid, mut suid) = (0, 0, 0);
    let (mut rgid, mut egid, mut sgid) = (0, 0, 0);
    // SAFETY: the pointers are to live locals; getgroups with size 0 writes nothing.
    let groups = unsafe {
        check(
            libc::getresuid(&mut ruid, &mut euid, &mut suid),
            "getresuid",
        )?;
        check(
            libc::getresgid(&mut rgid, &mut egid, &mut sgid),
            "getresgid",
        )?;
        libc::getgroups(0, std::ptr::null_mut())
    };
    if [ruid, euid, suid] != [uid; 3] || [rgid, egid, sgid] != [gid; 3] {
        return Err(format!(
            "after switching to '{user}' ({uid}:{gid}) the process is uid {ruid}/{euid}/{suid}, \
             gid {rgid}/{egid}/{sgid} (real/effective/saved)"
        ));
    }
    if groups != 0 {
        return Err(format!(
            "after switching to '{user}' the process still has {groups} supplementary groups"
        ));
    }
    Ok(())
}

/// Empties the ambient, effective, permitted and inheritable capability sets of this thread.
/// Giving up capabilities is always allowed.
fn clear_capabilities() -> Result<(), String> {
    // EINVAL means a kernel older than 4.3, without ambient capabilities: none to clear.
    let rc = prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    );
    if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(format!(
            "prctl(PR_CAP_AMBIENT_CLEAR_ALL): {}",
            io::Error::last_os_error()
        ));
    }
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads one header and two data records, which is what we pass.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(format!("capset(none): {}", io::Error::last_os_error()));
    }
    Ok(())
}

/// Checks with capget (and the ambient set with prctl) that no capability is left.
fn verify_no_capabilities() -> Result<(), String> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two data records, which is what we pass.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(format!("capget: {}", io::Error::last_os_error()));
    }
    let left = data
        .iter()
        .any(|d| d.effective != 0 || d.permitted != 0 || d.inheritable != 0);
    if left {
        return Err(format!(
            "capabilities left after dropping them: effective {:#x}{:08x}, permitted {:#x}{:08x}",
            data[1].effective, data[0].effective, data[1].permitted, data[0].permitted
        ));
    }
    // Ambient capabilities are a subset of the permitted ones, so none can be left; asking
    // once for CAP_NET_RAW, the one we were given, documents that.
    let raw = prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
        CAP_NET_RAW,
    );
    if raw == 1 {
        return Err("CAP_NET_RAW is still in the ambient set".into());
    }
    Ok(())
}

/// prctl with integer arguments only. They are passed as unsigned longs, the width the kernel
/// reads (a variadic int could leave garbage in the upper half on 64-bit targets), and the
/// unused fourth and fifth are zero, as several options require.
fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> libc::c_int {
    let zero: libc::c_ulong = 0;
    // SAFETY: no pointers are passed.
    unsafe { libc::prctl(option, arg2, arg3, zero, zero) }
}

/// A libc result: -1 becomes an error naming `what` and the OS error.
fn check(rc: libc::c_int, what: &str) -> Result<(), String> {
    if rc == -1 {
        Err(format!("{what}: {}", io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

/// Gives `user` the directories the sensor writes (and the files already in them, written by
/// an earlier run as root), so that it can go on writing after `drop_to`. Only as root.
pub fn hand_over(user: &str, dirs: &[&std::path::Path]) -> Result<(), String> {
    // SAFETY: getuid/geteuid cannot fail and touch no memory.
    if unsafe { libc::getuid() != 0 && libc::geteuid() != 0 } {
        return Ok(());
    }
    let (uid, gid) = lookup(user)?;
    for dir in dirs {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let chown = |p: &std::path::Path| {
            std::os::unix::fs::chown(p, Some(uid), Some(gid))
                .map_err(|e| format!("giving {} to '{user}': {e}", p.display()))
        };
        chown(dir)?;
        for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                chown(&entry.path())?;
            }
        }
    }
    Ok(())
}
