//! The firmware agent's code path against a real QEMU: the same no_std
//! logic over `embedded-io-adapters`' std wrapper, and the no_std binary
//! itself with the QMP socket as its "serial port".

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant as StdInstant};

use embedded_io_adapters::std::FromStd;
use firmware_agent::RunState;
use qmp_core::Instant;
use tests::{QemuServer, SerialPort, within};

fn serial_port(qemu: &QemuServer) -> FromStd<SerialPort> {
    let sock = UnixStream::connect(&qemu.socket).expect("connect to QEMU");
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    FromStd::new(SerialPort(sock))
}

#[test]
fn agent_logic_over_embedded_io_adapters_against_real_qemu() {
    let qemu = QemuServer::start(&[]);
    let port = serial_port(&qemu);
    let report = within(
        Duration::from_secs(30),
        "the agent's round trip",
        move || {
            let origin = StdInstant::now();
            let clock = move || Instant::from_micros(origin.elapsed().as_micros() as u64);
            firmware_agent::run(port, clock, Duration::from_secs(5)).expect("agent run")
        },
    );
    assert_eq!(report.version, tests::qemu_version());
    assert_eq!(report.initial, RunState::Prelaunch);
    assert!(report.stopped_at.is_some_and(|t| t.seconds > 0));
    assert_eq!(report.after_stop, RunState::Paused);
}

#[test]
fn driver_times_out_on_a_silent_port() {
    // A peer that accepts and never greets: the port's read timeouts let
    // the driver see its deadline pass.
    let dir = tests::TempDir::new("silent");
    let path = dir.join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let sock = UnixStream::connect(&path).unwrap();
    let _held = listener.accept().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let port = FromStd::new(SerialPort(sock));
    let err = within(
        Duration::from_secs(10),
        "connect to a silent peer",
        move || {
            let origin = StdInstant::now();
            let clock = move || Instant::from_micros(origin.elapsed().as_micros() as u64);
            firmware_agent::run(port, clock, Duration::from_millis(300)).unwrap_err()
        },
    );
    assert!(
        matches!(err, qmp_core::driver::DriverError::Timeout),
        "{err:?}"
    );
}

/// Builds the no_std firmware agent and returns the executable's path, as
/// Cargo reports it (wherever `CARGO_TARGET_DIR` or a config puts it).
fn build_firmware_agent() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--quiet",
            "-p",
            "firmware-agent",
            "--features",
            "run",
            "--profile",
            "firmware",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building the no_std firmware agent failed"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "firmware-agent")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no firmware-agent executable")
}

#[test]
fn no_std_binary_handles_stop_against_real_qemu() {
    let agent = build_firmware_agent();
    let qemu = QemuServer::start(&[]);
    let sock = UnixStream::connect(&qemu.socket).unwrap();
    let out = within(Duration::from_secs(30), "the no_std agent", move || {
        tests::command(agent)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(sock)))
            .output()
            .expect("run firmware-agent")
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("STOP handled"), "{stderr}");
}

#[test]
fn engine_sizes_for_the_memory_table() {
    use qmp_core::Client;
    // Capacities are set at run time: the fixed part is the same for every
    // configuration and must leave the heap budget to the messages.
    let client = size_of::<Client>();
    let driver = size_of::<firmware_agent::AgentDriver<FromStd<SerialPort>, fn() -> Instant>>();
    println!("Client: {client} B; AgentDriver: {driver} B");
    assert!(client < 4096, "{client}");
    assert!(driver < client + 1024, "{driver}");
}

#[test]
fn driver_resyncs_with_a_real_guest_agent() {
    use qmp_core::Config;
    use qmp_core::driver::EmbeddedDriver;
    use qmp_qapi::qga::{GuestInfo, GuestPing};
    let agent = tests::AgentServer::start();
    let sock = UnixStream::connect(&agent.socket).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let port = FromStd::new(SerialPort(sock));
    let info = within(
        Duration::from_secs(30),
        "a guest agent session",
        move || {
            let origin = StdInstant::now();
            let clock = move || Instant::from_micros(origin.elapsed().as_micros() as u64);
            let config = Config::qga()
                .sync_seed(std::process::id().into())
                .max_queued_events(8)
                .max_open_requests(4);
            let mut qga = EmbeddedDriver::connect(port, clock, config, Duration::from_secs(5))
                .expect("resync with qemu-ga");
            qga.call(&GuestPing).expect("guest-ping");
            qga.call(&GuestInfo).expect("guest-info")
        },
    );
    assert_eq!(info.version, tests::dotted(tests::qemu_ga_version()));
    assert!(
        info.supported_commands
            .iter()
            .any(|c| c.name == "guest-ping")
    );
}
