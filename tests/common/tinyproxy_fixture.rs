//! tinyproxy (Debian's `tinyproxy` package, installed by scripts/setup.sh)
//! as a real CONNECT proxy, one per test, on an ephemeral port. Without
//! it a test fails in CI (`CI=true`) and is skipped, saying so, elsewhere.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Tinyproxy {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Tinyproxy {
    /// `http://127.0.0.1:PORT`, without credentials.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn binary() -> Option<PathBuf> {
    ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A running tinyproxy requiring `credentials` (user, password) when given;
/// its configuration syntax takes letters and digits only.
pub fn tinyproxy(credentials: Option<(&str, &str)>) -> Option<Tinyproxy> {
    let Some(bin) = binary() else {
        let msg = "tinyproxy is not installed (scripts/setup.sh installs it)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    };
    // tinyproxy needs a fixed port: take a free one from the kernel.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = std::env::temp_dir().join(format!("nhc-tinyproxy-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let mut conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 20\nLogLevel Info\n\
         PidFile \"{}\"\n",
        dir.join("pid").display()
    );
    if let Some((user, password)) = credentials {
        conf.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    // As root, tinyproxy wants a user to drop to; as anyone else it keeps its own.
    if is_root() {
        conf.push_str("User nobody\nGroup nogroup\n");
    }
    let conf_path = dir.join("tinyproxy.conf");
    std::fs::write(&conf_path, conf).expect("write tinyproxy.conf");
    let child = Command::new(bin)
        .arg("-d")
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tinyproxy starts");
    let mut proxy = Tinyproxy { child, port, dir };
    // Ready when it accepts connections (it binds within milliseconds).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = proxy.child.try_wait() {
            panic!("tinyproxy exited ({status}): check {}", conf_path.display());
        }
        assert!(
            Instant::now() < deadline,
            "tinyproxy did not listen on {port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(proxy)
}

fn is_root() -> bool {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}
