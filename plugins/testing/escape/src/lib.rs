//! Hostile plugin: tries to read a file, the environment, the network, the
//! host's HTTP capability and a secret it was not granted.
//! Every attempt must fail inside the sandbox; it reports what happened as
//! JSON lines so the tests can check each one.

use sandcron_plugin::Context;

fn outcome<T, E: std::fmt::Display>(result: Result<T, E>) -> String {
    match result {
        Ok(_) => "allowed".to_string(),
        Err(error) => format!("denied: {error}").replace('"', "'"),
    }
}

fn run(_ctx: Context, _input: Vec<u8>) -> Result<Vec<u8>, String> {
    let file = outcome(std::fs::read("/etc/passwd"));
    let cwd_listing = outcome(std::fs::read_dir("."));
    let env_count = std::env::vars_os().count();
    let home = outcome(std::env::var("HOME"));
    let socket = outcome(std::net::TcpStream::connect("127.0.0.1:22"));
    let listener = outcome(std::net::TcpListener::bind("127.0.0.1:0"));
    let lookup = outcome(std::net::ToSocketAddrs::to_socket_addrs("localhost:80"));
    let http = outcome(sandcron_plugin::http::get("http://127.0.0.1:9/"));
    let secret = match sandcron_plugin::secrets::get("db-password") {
        Some(_) => "readable",
        None => "none",
    };
    let report = format!(
        "{{\"file\":\"{file}\",\"read_dir\":\"{cwd_listing}\",\"env_count\":{env_count},\"home\":\"{home}\",\"socket\":\"{socket}\",\"listen\":\"{listener}\",\"dns\":\"{lookup}\",\"http\":\"{http}\",\"secret\":\"{secret}\"}}"
    );
    Ok(report.into_bytes())
}

sandcron_plugin::job!(run);
