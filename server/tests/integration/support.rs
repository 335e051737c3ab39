//! Shared fixtures: small snapshots, servers on free loopback ports, and a
//! blocking HTTP/1.1 client that can also misbehave on purpose.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dancu_engine::{
    build_snapshot, BiometricTemplates, BuildOptions, Citizen, Country, Date, Household, LegacyId,
    MaritalStatus, PersonalId, Relationship, Relative, Religion, Sex, TemplateDigest,
};
use dancu_server::{hash_key, Config, Layout, Server};

/// The citizen of the OpenAPI examples.
pub const EXAMPLE_ID: &str = "079089012345";
/// Their legacy ID.
pub const EXAMPLE_LEGACY: &str = "123456789";
/// Their face template hash.
pub const EXAMPLE_FACE: &str = "00112233445566778899aabbccddeeff";
/// A well-formed ID that is not in any test snapshot.
pub const UNKNOWN_ID: &str = "001089999999";
/// Citizens in the shared snapshot (besides the example).
pub const CITIZENS: u64 = 3000;

const SURNAMES: [&str; 6] = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Đặng"];
const MIDDLE: [&str; 4] = ["Văn", "Thị", "Đức", "Ngọc"];
const GIVEN: [&str; 6] = ["An", "Bình", "Châu", "Dũng", "Hương", "Phúc"];

/// The example citizen (see `openapi.yaml`).
pub fn example_citizen() -> Citizen {
    let mut c = citizen(0);
    c.id = PersonalId::parse(EXAMPLE_ID).unwrap();
    c.full_name = "Nguyễn Văn An".into();
    c.date_of_birth = Date::parse("1989-03-14").unwrap();
    c.sex = Sex::Male;
    c.legacy_id = Some(LegacyId::parse(EXAMPLE_LEGACY).unwrap());
    c.biometric_templates = BiometricTemplates {
        face: Some(TemplateDigest::parse_hex(EXAMPLE_FACE).unwrap()),
        fingerprint: None,
    };
    c
}

/// A deterministic synthetic citizen; serials from 500 000 up never collide
/// with the example.
pub fn citizen(i: u64) -> Citizen {
    let place = dancu_engine::codes::PROVINCES[(i % 63) as usize].0;
    let sex = if i % 2 == 0 { Sex::Male } else { Sex::Female };
    let year = 1930 + (i * 7 % 90) as u16;
    let id = PersonalId::new(place, sex, year, 500_000 + i as u32).unwrap();
    let name = format!(
        "{} {} {}",
        SURNAMES[(i % 6) as usize],
        MIDDLE[(i / 6 % 4) as usize],
        GIVEN[(i / 24 % 6) as usize]
    );
    let digest = |salt: u64| {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&(i + 1).to_le_bytes());
        d[8..].copy_from_slice(&salt.to_le_bytes());
        TemplateDigest(d)
    };
    Citizen {
        id,
        legacy_id: (i % 3 == 0).then(|| LegacyId::from_u32(200_000_000 + i as u32).unwrap()),
        full_name: name,
        date_of_birth: Date::new(year, (i % 12 + 1) as u8, (i % 28 + 1) as u8).unwrap(),
        sex,
        birth_registration_place: Some("Phường Bến Nghé, Quận 1, Hồ Chí Minh".into()),
        hometown: Some("Xã Tân Phú, Huyện Đức Hòa, Long An".into()),
        ethnicity: Some("Kinh".parse().unwrap()),
        religion: Some(Religion::NONE),
        nationality: Some(Country::VN),
        marital_status: Some(if i % 4 == 0 {
            MaritalStatus::Married
        } else {
            MaritalStatus::Single
        }),
        permanent_residence: Some("12 Lê Lợi, Phường Bến Thành, Quận 1, Hồ Chí Minh".into()),
        temporary_residence: None,
        current_residence: Some("12 Lê Lợi, Phường Bến Thành, Quận 1, Hồ Chí Minh".into()),
        blood_type: None,
        father: Some(Relative {
            full_name: "Nguyễn Văn Bố".into(),
            id: None,
            nationality: Some(Country::VN),
        }),
        mother: Some(Relative {
            full_name: "Trần Thị Mẹ".into(),
            id: None,
            nationality: Some(Country::VN),
        }),
        spouse: None,
        representative: None,
        household: Some(Household {
            head_id: None,
            head_name: "Nguyễn Văn Bố".into(),
            relationship: Relationship::Child,
        }),
        date_of_death: None,
        biometric_templates: BiometricTemplates {
            face: (i % 2 == 0).then(|| digest(1)),
            fingerprint: (i % 2 == 0).then(|| digest(2)),
        },
        enrolled_modalities_ignored: None,
    }
}

/// Builds a snapshot of the example plus `n` citizens at `path`.
pub fn build(path: &Path, generation: u64, n: u64) {
    let citizens: Vec<Citizen> = std::iter::once(example_citizen())
        .chain((1..=n).map(citizen))
        .collect();
    build_snapshot(
        path,
        BuildOptions {
            generation,
            build_time_unix: Some(1_700_000_000),
            ..Default::default()
        },
        &citizens,
    )
    .unwrap();
}

/// A snapshot shared by every test that does not change it.
pub fn shared_snapshot() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("dancu-server-it")
            .tempdir()
            .unwrap()
            .keep();
        let path = dir.join("shared.snap");
        build(&path, 1, CITIZENS);
        path
    })
}

/// Keys of the test `keys.toml`.
pub mod key {
    pub const READER: &str = "reader-key";
    pub const BASIC: &str = "basic-key";
    pub const VERIFIER: &str = "verifier-key";
    pub const VERIFIER_EXTENDED: &str = "verifier-extended-key";
    pub const BIOMETRIC: &str = "biometric-key";
    pub const ADMIN: &str = "admin-key";
    pub const LIMITED: &str = "limited-key";
    pub const REGISTRAR: &str = "registrar-key";
    pub const FEED: &str = "feed-key";
    pub const STATISTICS: &str = "statistics-key";
    pub const MATCHER: &str = "matcher-key";
    pub const ALL: &str = "all-key";
}

/// Writes a keys.toml with one client per [`key`] into `dir`.
pub fn write_keys(dir: &Path) -> PathBuf {
    let clients = [
        ("reader", key::READER, "\"citizen:read\"", ""),
        ("basic", key::BASIC, "\"citizen:read:basic\"", ""),
        ("verifier", key::VERIFIER, "\"citizen:verify\"", ""),
        (
            "verifier-extended",
            key::VERIFIER_EXTENDED,
            "\"citizen:verify:extended\"",
            "",
        ),
        ("biometric", key::BIOMETRIC, "\"biometric:identify\"", ""),
        ("admin", key::ADMIN, "\"admin\"", ""),
        (
            "limited",
            key::LIMITED,
            "\"citizen:read\"",
            "rate_limit_per_s = 0.2\nburst = 3\n",
        ),
        ("registrar", key::REGISTRAR, "\"registrar\"", ""),
        ("feed", key::FEED, "\"changes:read\"", ""),
        ("statistics", key::STATISTICS, "\"statistics:read\"", ""),
        ("matcher", key::MATCHER, "\"citizen:match\"", ""),
        (
            "all",
            key::ALL,
            "\"citizen:read\", \"citizen:verify\", \"citizen:verify:extended\", \"biometric:identify\", \"admin\", \"registrar\", \"changes:read\", \"statistics:read\"",
            "",
        ),
    ];
    let mut text = String::new();
    for (name, key, scopes, extra) in clients {
        text.push_str(&format!(
            "[[client]]\nname = \"{name}\"\nkey_sha256 = \"{}\"\nscopes = [{scopes}]\n{extra}\n",
            hash_key(key)
        ));
    }
    let path = dir.join("keys.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Rewrites `keys.toml` in `dir` without the clients named in `removed`
/// (what an operator does to revoke a key).
pub fn rewrite_keys_without(dir: &Path, removed: &[&str]) {
    let path = dir.join("keys.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text
        .split("[[client]]")
        .filter(|entry| {
            !entry.trim().is_empty()
                && !removed
                    .iter()
                    .any(|name| entry.contains(&format!("name = \"{name}\"\n")))
        })
        .collect();
    std::fs::write(&path, format!("[[client]]{}", kept.join("[[client]]"))).unwrap();
}

/// A server for one test, with its temp dir.
pub struct TestServer {
    pub server: Option<Server>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with keys.toml and an audit log in a fresh temp dir;
    /// `tweak` adjusts the config. Waits until ready.
    pub fn start(snapshot: &Path, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(snapshot);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.keys = Some(write_keys(dir.path()));
        config.audit = Some(dir.path().join("test.audit"));
        config.layout = Layout::MultiThread { threads: 2 };
        tweak(&mut config);
        let server = Server::start(config).unwrap();
        let addr = server.local_addr();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !server.is_ready() {
            assert!(Instant::now() < deadline, "server not ready in time");
            std::thread::sleep(Duration::from_millis(5));
        }
        TestServer {
            server: Some(server),
            addr,
            dir,
        }
    }

    /// A server with a change log in `dir`, over its own snapshot of the
    /// example plus `citizens` citizens.
    pub fn with_register(dir: &Path, citizens: u64) -> TestServer {
        let snapshot = dir.join("base.snap");
        build(&snapshot, 1, citizens);
        TestServer::start(&snapshot, |c| c.changes = Some(dir.join("changes")))
    }

    /// The shared snapshot with defaults.
    pub fn shared() -> TestServer {
        TestServer::start(shared_snapshot(), |_| {})
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("test.audit")
    }

    /// Graceful shutdown, waiting for it.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
            server.wait().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
            let _ = server.wait();
        }
    }
}

/// A response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `error.code` of an error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A keep-alive connection.
pub struct Client {
    reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    /// Raw bytes out.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Formats a request.
    pub fn format(method: &str, path: &str, key: Option<&str>, body: Option<&[u8]>) -> Vec<u8> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        if let Some(key) = key {
            req.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        if let Some(body) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(body) = body {
            bytes.extend_from_slice(body);
        }
        bytes
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&[u8]>,
    ) -> Response {
        self.send_raw(&Self::format(method, path, key, body));
        self.read_response().expect("a response")
    }

    pub fn get(&mut self, path: &str, key: Option<&str>) -> Response {
        self.request("GET", path, key, None)
    }

    pub fn post(&mut self, path: &str, key: Option<&str>, body: &str) -> Response {
        self.request("POST", path, key, Some(body.as_bytes()))
    }

    /// Reads one response; `None` when the server closed the connection.
    pub fn read_response(&mut self) -> Option<Response> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':')?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).ok()?;
        Some(Response {
            status,
            headers,
            body,
        })
    }

    /// Whether the server has closed the connection (reads EOF within `wait`).
    pub fn is_closed_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 1];
        match self.reader.read(&mut buf) {
            Ok(0) => true,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            Ok(_) => false,
        }
    }
}

/// A child process of a test (the `dancu-server` binary), killed and reaped
/// when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address in the banner's first line (`... listening on http://ADDR`).
pub fn listening_addr(banner: &str) -> SocketAddr {
    let first = banner.lines().next().unwrap_or_default();
    first
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no address in {first:?}"))
}

/// Starts the `dancu-server` binary on `snap` with `args` and returns it,
/// once ready, with
/// everything it printed up to and including the `ready:` line.
pub fn start_binary(snap: &Path, args: &[&std::ffi::OsStr]) -> (Proc, String) {
    let mut child = Proc(
        std::process::Command::new(env!("CARGO_BIN_EXE_dancu-server"))
            .arg("--snapshot")
            .arg(snap)
            .args(["--listen", "127.0.0.1:0", "--runtime", "multi:1"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut banner = String::new();
    for _ in 0..20 {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        banner.push_str(&line);
        if line.starts_with("ready:") {
            break;
        }
    }
    assert!(banner.contains("ready:"), "{banner}");
    (child, banner)
}

/// One request on a new connection.
pub fn once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Response {
    Client::connect(addr).request(method, path, key, body.map(str::as_bytes))
}
