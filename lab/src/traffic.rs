//! Real traffic between namespaces the lab or a test created: a TCP
//! listener inside one namespace, a connect from another, each on its own
//! thread inside its namespace. Nothing leaves the machine.

use std::{
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

use linkherd_agent::net::netns::NetnsGuard;

/// Whether a TCP connection from namespace `from` reaches `ip:port` served
/// from namespace `to` within `timeout`.
pub fn tcp_reaches(
    from: &Path,
    to: &Path,
    ip: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<bool, String> {
    let addr = SocketAddr::new(ip, port);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let to = to.to_owned();
    let wait = timeout + Duration::from_secs(1);
    let server = std::thread::spawn(move || {
        let setup = (|| {
            let guard = NetnsGuard::enter(&to).map_err(|e| e.to_string())?;
            let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok::<_, String>((guard, listener))
        })();
        let (_guard, listener) = match setup {
            Ok(v) => v,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if listener.accept().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    ready_rx.recv().map_err(|e| e.to_string())??;
    let from = from.to_owned();
    let ok = std::thread::spawn(move || -> Result<bool, String> {
        let _g = NetnsGuard::enter(&from).map_err(|e| e.to_string())?;
        Ok(TcpStream::connect_timeout(&addr, timeout).is_ok())
    })
    .join()
    .map_err(|_| "client thread panicked".to_owned())??;
    let _ = server.join();
    Ok(ok)
}
