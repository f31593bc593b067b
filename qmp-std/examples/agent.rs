//! Talks to a guest agent socket: pings it, prints its version and the
//! guest's host name, and runs a command in the guest.
//!
//! ```sh
//! qemu-ga -m unix-listen -p /tmp/qga.sock -t /tmp/qga-state &
//! cargo run -p qmp-std --example agent -- /tmp/qga.sock
//! ```

use core::time::Duration;

use qmp_qapi::qga::{
    GuestExecCaptureOutput, GuestExecCommand, GuestExecStatusCommand, GuestGetHostName, GuestPing,
};
use qmp_std::{Agent, Options};

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/qga.sock".into());
    // Wait up to 5 s for the socket to appear (the guest may still be booting).
    let options = Options::new().connect_timeout(Duration::from_secs(5));
    let mut agent = Agent::connect_unix(&path, options)?;
    agent.call(&GuestPing)?;
    let info = agent.execute("guest-info", None)?;
    println!("agent {}", info["version"]);
    println!("host name: {}", agent.call(&GuestGetHostName)?.host_name);
    let exec = agent.call(&GuestExecCommand {
        path: "/bin/uname".into(),
        arg: Some(vec!["-a".into()]),
        env: None,
        input_data: None,
        capture_output: Some(GuestExecCaptureOutput::Flag(true)),
    })?;
    for _ in 0..100 {
        let status = agent.call(&GuestExecStatusCommand { pid: exec.pid })?;
        if status.exited {
            println!(
                "uname exited with {:?}; output (base64): {:?}",
                status.exitcode, status.out_data
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.disconnect();
    Ok(())
}
