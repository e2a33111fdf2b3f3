//! A throwaway PostgreSQL 15 server for the black-box tests: started once per
//! test process on first use (as the unprivileged `postgres` user when the
//! tests run as root, since PostgreSQL refuses root), a fresh database per
//! daemon data dir, stop and start for outage tests, and a watchdog that
//! stops the server and removes its folder when the test process ends, even
//! by a panic or a kill. `SANDCRON_TEST_DATABASE_HOST_URL` points the tests
//! at a server of the caller's instead.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use url::Url;

/// The environment variable naming a server of the caller's
/// (`postgres://user@host:port`) to create the tests' databases on instead
/// of starting one.
pub const HOST_URL_ENV: &str = "SANDCRON_TEST_DATABASE_HOST_URL";

/// Where the servers' folders go and how their names start (the sweep of
/// stale ones looks for the same).
const PARENT: &str = "/tmp";
const DIR_PREFIX: &str = "sandcron-pg.";

/// The superuser `initdb` creates; trust authentication, so no password.
const ROLE: &str = "sandcron";

/// The unprivileged user the server runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// How many fresh ports a first start tries before giving up (another
/// process may take a port between our probe and the server's bind).
const PORT_ATTEMPTS: usize = 8;

/// The test process's server (or the caller's, see [`HOST_URL_ENV`]),
/// started on first use; panics naming the cause when it cannot start.
pub fn server() -> &'static PgServer {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    // A failure is kept, so every test fails fast with the same message
    // instead of each trying to start a server again.
    match SERVER.get_or_init(PgServer::open) {
        Ok(server) => server,
        Err(failure) => panic!("the test PostgreSQL server is not available: {failure}"),
    }
}

/// A PostgreSQL server the tests create databases on.
pub struct PgServer {
    /// The URL of the database administrative statements run in
    /// (`postgres://sandcron@127.0.0.1:PORT/postgres`); a test database's
    /// URL is this one with its own name as the path.
    admin_url: Url,
    /// The server this process started; None for the caller's.
    local: Option<LocalServer>,
    psql: PathBuf,
    /// The database of each daemon data dir, so a restarted daemon finds
    /// its state again.
    by_data_dir: Mutex<HashMap<PathBuf, String>>,
    /// Databases created so far, for unique names.
    created: AtomicU64,
    /// When this process started its first database (seconds), so names
    /// stay unique on a shared server across runs that reuse a pid.
    stamp: u64,
}

/// The server this test process runs.
struct LocalServer {
    /// `/tmp/sandcron-pg.XXXXXX`: `data/`, `pg.log`, `owner` and the socket.
    dir: PathBuf,
    pg_ctl: PathBuf,
    port: u16,
    /// The uid and gid the server runs as (None: as this process).
    run_as: Option<(u32, u32)>,
    /// Serialises stop and start.
    control: Mutex<()>,
    /// The write end of the watchdog's stdin, held for the life of the
    /// process: its close, however the process ends, tells the watchdog to
    /// stop the server and remove `dir`.
    _watchdog: ChildStdin,
}

impl PgServer {
    /// The caller's server when [`HOST_URL_ENV`] is set, else a new local one.
    fn open() -> Result<PgServer, String> {
        let host_url = std::env::var(HOST_URL_ENV).ok().filter(|url| !url.trim().is_empty());
        let binaries = match host_url {
            Some(_) => Binaries::find(),
            None => Binaries::find().with_server_installed()?,
        };
        let psql = binaries.tool("psql").ok_or_else(|| {
            "no psql (PostgreSQL's client) in `pg_config --bindir`, /usr/lib/postgresql/15/bin or PATH: \
             install postgresql-client-15"
                .to_string()
        })?;
        let (admin_url, local) = match host_url {
            Some(host_url) => (external_admin_url(host_url.trim())?, None),
            None => {
                let local = LocalServer::start(&binaries)?;
                let admin_url = Url::parse(&format!("postgres://{ROLE}@127.0.0.1:{}/postgres", local.port))
                    .map_err(|error| format!("the local server's URL: {error}"))?;
                (admin_url, Some(local))
            }
        };
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or_default();
        Ok(PgServer {
            admin_url,
            local,
            psql,
            by_data_dir: Mutex::new(HashMap::new()),
            created: AtomicU64::new(0),
            stamp,
        })
    }

    /// Creates a fresh database and returns its URL
    /// (`postgres://sandcron@127.0.0.1:PORT/NAME`).
    pub fn database(&self) -> String {
        let number = self.created.fetch_add(1, Ordering::Relaxed);
        let name = format!("sandcron_{}_{}_{number}", self.stamp, std::process::id());
        let admin_url = self.admin_url.to_string();
        if let Err(failure) = self.try_psql(&admin_url, &format!("create database \"{name}\"")) {
            panic!("creating database {name}: {failure}");
        }
        self.url_of(&name)
    }

    /// The database of a daemon's data dir: created on the first call for
    /// `data_dir`, the same URL on every later one.
    pub fn database_for(&self, data_dir: &Path) -> String {
        // A test that panicked while creating a database left the map whole.
        let mut databases = self.by_data_dir.lock().unwrap_or_else(PoisonError::into_inner);
        databases
            .entry(data_dir.to_path_buf())
            .or_insert_with(|| self.database())
            .clone()
    }

    /// The server's URL without a database (`postgres://user@host:port`).
    pub fn host_url(&self) -> String {
        let mut url = self.admin_url.clone();
        url.set_path("");
        url.to_string()
    }

    /// Runs `sql` with psql (unaligned, tuples only) on a database given by
    /// URL or by name, and returns what it printed without the last newline;
    /// panics with psql's error when it fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql)
            .unwrap_or_else(|failure| panic!("psql on {database}: {sql}: {failure}"))
    }

    /// [`PgServer::psql`] that returns psql's error instead of panicking
    /// (for a server that is down on purpose).
    pub fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let url = if database.contains("://") {
            database.to_string()
        } else {
            self.url_of(database)
        };
        let output = Command::new(&self.psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql, "-d", &url])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("running {}: {error}", self.psql.display()))?;
        if !output.status.success() {
            return Err(describe(&output));
        }
        let mut printed = String::from_utf8_lossy(&output.stdout).into_owned();
        if printed.ends_with('\n') {
            printed.pop();
        }
        Ok(printed)
    }

    /// Stops the server at once (`-m immediate`: no checkpoint, as a crash
    /// would), for outage tests.
    pub fn stop(&self) {
        let local = self.local("stop");
        let _control = local.control.lock().unwrap_or_else(PoisonError::into_inner);
        local
            .stop()
            .unwrap_or_else(|failure| panic!("stopping the test server: {failure}"));
    }

    /// Starts the server again after [`PgServer::stop`]: same port, same data.
    pub fn start(&self) {
        let local = self.local("start");
        let _control = local.control.lock().unwrap_or_else(PoisonError::into_inner);
        local
            .start_again()
            .unwrap_or_else(|failure| panic!("starting the test server again: {failure}"));
    }

    /// [`PgServer::stop`] then [`PgServer::start`].
    pub fn restart(&self) {
        let local = self.local("restart");
        let _control = local.control.lock().unwrap_or_else(PoisonError::into_inner);
        local
            .stop()
            .unwrap_or_else(|failure| panic!("stopping the test server: {failure}"));
        local
            .start_again()
            .unwrap_or_else(|failure| panic!("starting the test server again: {failure}"));
    }

    /// The server's log (empty for the caller's server).
    pub fn log(&self) -> String {
        self.local
            .as_ref()
            .and_then(|local| std::fs::read(local.dir.join("pg.log")).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The local server, or a panic saying an outage needs one.
    fn local(&self, what: &str) -> &LocalServer {
        self.local.as_ref().unwrap_or_else(|| {
            panic!(
                "{what}: the tests use the server at {} ({HOST_URL_ENV}), which they do not control; \
                 unset {HOST_URL_ENV} to run outage tests on a server of their own",
                self.host_url()
            )
        })
    }

    fn url_of(&self, database: &str) -> String {
        let mut url = self.admin_url.clone();
        url.set_path(&format!("/{database}"));
        url.to_string()
    }
}

impl LocalServer {
    /// Sweeps stale folders, makes a folder owned by the server's user,
    /// starts the watchdog, runs initdb and starts the server on a free port.
    fn start(binaries: &Binaries) -> Result<LocalServer, String> {
        let initdb = binaries.tool("initdb").ok_or("no initdb")?;
        let pg_ctl = binaries.tool("pg_ctl").ok_or("no pg_ctl beside initdb")?;
        let run_as = server_user()?;
        sweep_stale(&pg_ctl);

        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(PARENT)
            .map_err(|error| format!("making a folder in {PARENT}: {error}"))?
            .keep();
        // Written first, so a sweep can tell whose folder this is.
        std::fs::write(dir.join("owner"), std::process::id().to_string())
            .map_err(|error| format!("writing {}/owner: {error}", dir.display()))?;
        // Readable by the test (the log) and traversable by the server's user.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|error| format!("chmod {}: {error}", dir.display()))?;
        if let Some((uid, gid)) = run_as {
            for path in [dir.clone(), dir.join("owner")] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|error| format!("chown {} to {SERVER_USER}: {error}", path.display()))?;
            }
        }
        // Before anything that can fail: from here on the folder goes
        // away with this process (or with this attempt, if it fails).
        let watchdog = spawn_watchdog(&dir, &pg_ctl, run_as)?;

        let initialised = as_server_user(&initdb, &dir, run_as)
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                ROLE,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .map_err(|error| format!("running {}: {error}", initdb.display()))?;
        if !initialised.status.success() {
            return Err(format!("initdb failed: {}", describe(&initialised)));
        }

        let mut server = LocalServer {
            dir,
            pg_ctl,
            port: 0,
            run_as,
            control: Mutex::new(()),
            _watchdog: watchdog,
        };
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(Start::PortTaken(log)) => failures.push(format!("port {}: {log}", server.port)),
                Err(Start::Failed(failure)) => return Err(failure),
            }
        }
        Err(format!(
            "no free port after {PORT_ATTEMPTS} attempts: {}",
            failures.join("; ")
        ))
    }

    /// Starts the stopped server on its port, waiting out a port that is
    /// taken for a moment.
    fn start_again(&self) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..40 {
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(Start::PortTaken(log)) => last = log,
                Err(Start::Failed(failure)) => return Err(failure),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("port {} stayed taken: {last}", self.port))
    }

    fn pg_ctl_start(&self) -> Result<(), Start> {
        let log = self.dir.join("pg.log");
        let log_start = std::fs::metadata(&log).map(|metadata| metadata.len()).unwrap_or(0);
        // fsync off: the machine does not crash under a test, so what the
        // server wrote survives an immediate stop. synchronous_commit stays
        // on: off, a commit is acknowledged before its WAL is written, and an
        // immediate stop would lose it, which no real outage test expects.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {dir} -c fsync=off -c full_page_writes=off \
             -c max_connections=300 -c shared_buffers=64MB",
            port = self.port,
            dir = self.dir.display(),
        );
        let output = as_server_user(&self.pg_ctl, &self.dir, self.run_as)
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .output()
            .map_err(|error| Start::Failed(format!("running {}: {error}", self.pg_ctl.display())))?;
        if output.status.success() {
            return Ok(());
        }
        let logged = read_from(&log, log_start);
        let port_taken = [
            "could not bind",
            "Address already in use",
            "could not create any TCP/IP sockets",
        ]
        .iter()
        .any(|sign| logged.contains(sign));
        if port_taken {
            Err(Start::PortTaken(logged.trim().to_string()))
        } else {
            Err(Start::Failed(format!(
                "pg_ctl start failed: {}; server log: {}",
                describe(&output),
                logged.trim()
            )))
        }
    }

    fn stop(&self) -> Result<(), String> {
        let output = as_server_user(&self.pg_ctl, &self.dir, self.run_as)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", "30", "-m", "immediate", "stop"])
            .output()
            .map_err(|error| format!("running {}: {error}", self.pg_ctl.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(describe(&output))
        }
    }
}

/// Why a `pg_ctl start` failed: a port someone else holds (try another) or
/// anything else (give up).
enum Start {
    PortTaken(String),
    Failed(String),
}

/// Where the PostgreSQL programs are: `pg_config --bindir`, Debian's
/// `/usr/lib/postgresql/15/bin`, then PATH.
struct Binaries {
    folders: Vec<PathBuf>,
}

impl Binaries {
    fn find() -> Binaries {
        let mut folders = Vec::new();
        if let Ok(output) = Command::new("pg_config").arg("--bindir").stdin(Stdio::null()).output()
            && output.status.success()
        {
            let bindir = String::from_utf8_lossy(&output.stdout).trim().to_string();
            if !bindir.is_empty() {
                folders.push(PathBuf::from(bindir));
            }
        }
        folders.push(PathBuf::from("/usr/lib/postgresql/15/bin"));
        if let Some(path) = std::env::var_os("PATH") {
            folders.extend(std::env::split_paths(&path));
        }
        Binaries { folders }
    }

    fn tool(&self, name: &str) -> Option<PathBuf> {
        self.folders
            .iter()
            .map(|folder| folder.join(name))
            .find(|path| path.is_file())
    }

    /// These binaries if they hold initdb; else runs
    /// `scripts/install-postgres` and looks again.
    fn with_server_installed(self) -> Result<Binaries, String> {
        if self.tool("initdb").is_some() {
            return Ok(self);
        }
        let script = super::repo_root().join("scripts").join("install-postgres");
        let output = Command::new(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("no initdb, and running {} failed: {error}", script.display()))?;
        let found = Binaries::find();
        if found.tool("initdb").is_none() {
            return Err(format!(
                "no initdb (PostgreSQL 15's server) in `pg_config --bindir`, /usr/lib/postgresql/15/bin \
                 or PATH, and {} did not install it: {}",
                script.display(),
                describe(&output)
            ));
        }
        Ok(found)
    }
}

/// The admin URL of the caller's server: its own path if it names a
/// database, else `/postgres`.
fn external_admin_url(host_url: &str) -> Result<Url, String> {
    let mut url = Url::parse(host_url).map_err(|error| format!("{HOST_URL_ENV}={host_url}: {error}"))?;
    if url.host_str().is_none() {
        return Err(format!(
            "{HOST_URL_ENV}={host_url}: no host (expected postgres://user@host:port)"
        ));
    }
    if url.path().trim_matches('/').is_empty() {
        url.set_path("/postgres");
    }
    Ok(url)
}

/// The uid and gid of the `postgres` user when this process is root (the
/// server refuses to run as root), else None.
fn server_user() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|error| format!("reading /etc/passwd: {error}"))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.first() != Some(&SERVER_USER) {
                return None;
            }
            Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
        })
        .map(Some)
        .ok_or_else(|| {
            format!(
                "the tests run as root and PostgreSQL refuses root, but there is no user {SERVER_USER} \
                 in /etc/passwd to run it as (installing postgresql-15 creates it)"
            )
        })
}

/// A command that runs as the server's user (when set), in the server's
/// folder (the test's own working folder may be closed to that user).
fn as_server_user(program: &Path, dir: &Path, run_as: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    command.current_dir(dir).stdin(Stdio::null());
    if let Some((uid, gid)) = run_as {
        // std drops the supplementary groups when root sets a uid.
        command.uid(uid).gid(gid);
    }
    command
}

/// A detached shell that waits for its stdin to close (this process ending,
/// however it ends), then stops the server and removes its folder. A test
/// process killed while setting up leaves an initdb or a starting server
/// behind that may write into the folder a moment longer: the shell looks
/// again a second later, and again, until the folder stays gone.
fn spawn_watchdog(dir: &Path, pg_ctl: &Path, run_as: Option<(u32, u32)>) -> Result<ChildStdin, String> {
    let script = r#"
        cat >/dev/null
        for pass in 1 2 3 4 5 6 7 8 9 10; do
            if [ -d "$2/data" ]; then "$1" -D "$2/data" -w -t 30 -m immediate stop >/dev/null 2>&1; fi
            rm -rf "$2" 2>/dev/null
            sleep 1
            [ -e "$2" ] || break
        done
    "#;
    let mut command = Command::new("sh");
    command
        .args(["-c", script, "sandcron-pg-watchdog"])
        .arg(pg_ctl)
        .arg(dir)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C of the tests does not reach it.
        .process_group(0);
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid);
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("starting the watchdog shell: {error}"))?;
    child
        .stdin
        .take()
        .ok_or_else(|| "the watchdog's stdin is not piped".to_string())
}

/// Removes the servers of test processes that are gone but whose watchdog
/// did not finish (killed with them, or the machine stopped).
fn sweep_stale(pg_ctl: &Path) {
    let Ok(entries) = std::fs::read_dir(PARENT) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let owner = std::fs::read_to_string(path.join("owner"))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        match owner {
            Some(pid) if process_alive(pid) => continue,
            Some(_) => {}
            // Another process may be between making the folder and
            // writing its owner: only an old one without is stale.
            None => {
                let age = metadata.modified().ok().and_then(|modified| modified.elapsed().ok());
                if age.is_none_or(|age| age < Duration::from_secs(120)) {
                    continue;
                }
            }
        }
        if path.join("data").join("postmaster.pid").exists() {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let run_as = (unsafe { libc::geteuid() } == 0).then(|| (metadata.uid(), metadata.gid()));
            let _ = as_server_user(pg_ctl, Path::new("/"), run_as)
                .arg("-D")
                .arg(path.join("data"))
                .args(["-w", "-t", "10", "-m", "immediate", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// Whether a process with this id exists.
fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A port free on 127.0.0.1 a moment ago.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|error| format!("binding 127.0.0.1:0: {error}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| format!("the probe's address: {error}"))
}

/// What a file holds from `offset` on (empty if it cannot be read).
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = file.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// A failed command's status and output, for a message.
fn describe(output: &Output) -> String {
    format!(
        "{}: {} {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}
