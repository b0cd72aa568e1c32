//! The local admin socket: bound so that nobody but root gets between it
//! and its clients.

use tokio::net::UnixListener;

/// Binds the local admin socket, which serves root as admin without
/// certificates — so nobody else may get between it and its clients:
/// - its directory is created mode 0700, or, when it exists, must not be
///   writable by group or others (else a local user could replace the
///   socket and receive root's connections);
/// - the socket is bound under umask 077 and set to 0600;
/// - a file that is not a socket is never replaced, and neither is a socket
///   another agent still serves on (only a stale one is removed).
pub fn bind_unix(path: &std::path::Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    let refuse = |msg: String| std::io::Error::new(std::io::ErrorKind::AlreadyExists, msg);
    if let Some(dir) = path.parent() {
        match std::fs::metadata(dir) {
            Ok(m) if m.permissions().mode() & 0o022 != 0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is writable by others (mode {:o}); put the socket in a directory \
                         only root can write, e.g. /run/linkherd",
                        dir.display(),
                        m.permissions().mode() & 0o7777
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
                // The mode given is filtered by the umask; set it exactly.
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            Err(e) => return Err(e),
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(refuse(format!(
                    "{} is in use: another agent serves on it; give this one another socket path",
                    path.display()
                )));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(refuse(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // No moment in which the socket exists with looser permissions.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}
