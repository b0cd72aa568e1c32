//! A shell inside a guest, for tests and for a look inside: each guest's
//! virtio console is a unix socket in its lab directory, read by a
//! non-interactive busybox `sh` (see the init script). [`run`] writes a
//! script and reads its output up to an end marker that carries a nonce
//! and the script's exit status. Only the lab's own guests have this port;
//! the socket is in the lab's directory, which only root can reach.

use std::{
    io::{ErrorKind, Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{LabError, LabState};

/// Output kept from one script; more is an error, not a truncation.
const MAX_OUTPUT: usize = 1 << 20;

/// What a script printed (stdout and stderr together) and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub status: i32,
    pub output: String,
}

/// The shell's socket of the guest whose console log is `console_log`
/// (both in the host's lab directory).
pub fn socket(console_log: &Path) -> PathBuf {
    console_log.with_file_name("shell.sock")
}

/// A marker no script prints by chance.
fn nonce(what: &str) -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "__LH_{what}_{}_{}_{t}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// How often the handshake asks again.
const HELLO_EVERY: Duration = Duration::from_millis(300);

/// Quiet for this long, the console is nudged with an empty line.
const KICK_AFTER: Duration = Duration::from_millis(200);

/// A connection to a guest's shell, read as it arrives.
struct Conn {
    stream: UnixStream,
    path: PathBuf,
    got: Vec<u8>,
}

impl Conn {
    fn io(&self, e: std::io::Error) -> LabError {
        LabError::Io(self.path.clone(), e)
    }

    fn send(&mut self, text: &str) -> Result<(), LabError> {
        self.stream
            .write_all(text.as_bytes())
            .map_err(|e| self.io(e))
    }

    /// Reads for up to `wait`; false once the shell has closed.
    fn read_for(&mut self, wait: Duration) -> Result<bool, LabError> {
        let mut buf = [0u8; 8192];
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(|e| self.io(e))?;
        match self.stream.read(&mut buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.got.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(true),
            Err(e) => Err(self.io(e)),
        }
    }
}

/// Runs `script` in `host`'s guest (stdin /dev/null, in a subshell) and
/// waits up to `timeout` for it to end. A handshake comes first: the guest's
/// shell restarts when a client goes (the console hangs up), and what is
/// written meanwhile is lost, so `echo HELLO` is sent until it comes back.
pub fn run(state: &LabState, host: &str, script: &str, timeout: Duration) -> Result<Ran, LabError> {
    let h = state
        .hosts
        .iter()
        .find(|h| h.name == host && h.vm_index.is_some())
        .ok_or_else(|| LabError::State(format!("{host} is not a guest of this lab")))?;
    let path = socket(&h.log);
    let stream = UnixStream::connect(&path).map_err(|e| LabError::Io(path.clone(), e))?;
    let mut c = Conn {
        stream,
        path,
        got: Vec::new(),
    };
    let (hello, end) = (nonce("HELLO"), nonce("END"));
    let deadline = Instant::now() + timeout;
    let late = |c: &Conn, what: &str| {
        LabError::State(format!(
            "the shell on {host} did not {what} within {} s; it printed:\n{}",
            timeout.as_secs(),
            String::from_utf8_lossy(&c.got)
        ))
    };
    let hello_line = format!("{hello}\n");
    let answered = |c: &Conn| String::from_utf8_lossy(&c.got).contains(&hello_line);
    while !answered(&c) {
        if Instant::now() > deadline {
            return Err(late(&c, "answer"));
        }
        c.send(&format!("echo {hello}\n"))?;
        let asked = Instant::now();
        while asked.elapsed() < HELLO_EVERY && !answered(&c) {
            if !c.read_for(HELLO_EVERY.saturating_sub(asked.elapsed()))? {
                return Err(LabError::State(format!("{host}'s shell closed")));
            }
        }
    }
    c.send(&format!(
        "(\n{script}\n) </dev/null\nprintf '\\n%s %d\\n' {end} $?\n"
    ))?;
    loop {
        if let Some(ran) = ended(&c.got, &hello, &end) {
            return Ok(ran);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || c.got.len() > MAX_OUTPUT {
            return Err(late(
                &c,
                &format!("end the script (or print under {MAX_OUTPUT} bytes)"),
            ));
        }
        let before = c.got.len();
        if !c.read_for(left.min(KICK_AFTER))? {
            return Err(LabError::State(format!("{host}'s shell closed")));
        }
        if c.got.len() == before {
            // An empty line for the shell: the console can hold what the
            // guest wrote until the next input arrives.
            c.send("\n")?;
        }
    }
}

/// The script's output and status once `end` has been printed: what came
/// between the last handshake line and the end marker.
fn ended(got: &[u8], hello: &str, end: &str) -> Option<Ran> {
    let text = String::from_utf8_lossy(got);
    let at = text.find(&format!("\n{end} "))?;
    let rest = &text[at + end.len() + 2..];
    let status = rest.split('\n').next().filter(|_| rest.contains('\n'))?;
    let hello_line = format!("{hello}\n");
    let from = text[..at]
        .rfind(&hello_line)
        .map_or(0, |i| i + hello_line.len());
    Some(Ran {
        status: status.trim().parse().ok()?,
        output: text[from..at].to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_is_what_came_between_the_last_hello_and_its_end() {
        let (hello, end) = ("__LH_HELLO_1", "__LH_END_2");
        assert_eq!(ended(b"__LH_HELLO_1\npartial out", hello, end), None);
        assert_eq!(
            ended(b"out\n__LH_END_2 1", hello, end),
            None,
            "status not whole yet"
        );
        assert_eq!(
            ended(
                b"old\n__LH_HELLO_1\n__LH_HELLO_1\nout\nmore\n__LH_END_2 7\n",
                hello,
                end
            ),
            Some(Ran {
                status: 7,
                output: "out\nmore".into()
            })
        );
        assert_eq!(
            ended(b"__LH_HELLO_1\n\n__LH_END_2 0\n", hello, end),
            Some(Ran {
                status: 0,
                output: String::new()
            })
        );
    }
}
