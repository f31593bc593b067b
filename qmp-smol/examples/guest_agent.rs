//! Talks to a guest agent: pings it, prints its version, host name and the
//! output of `uname -a` run through `guest-exec`.
//!
//! ```sh
//! qemu-ga -m unix-listen -p /tmp/qga.sock -t /tmp/qga-state &
//! cargo run -p qmp-smol --example guest_agent -- /tmp/qga.sock
//! ```

use std::time::Duration;

use qmp_qapi::qga::{
    GuestExecCaptureOutput, GuestExecCommand, GuestExecStatusCommand, GuestGetHostName, GuestPing,
};
use qmp_smol::{Agent, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: agent SOCKET")?;
    smol::block_on(async {
        let options = Options::default()
            .socket_wait(Duration::from_secs(5))
            .timeout(Duration::from_secs(10));
        let (agent, driver) = Agent::connect_unix(&path, options).await?;
        let driver = smol::spawn(driver);

        agent.call(&GuestPing).await?;
        let info = agent.execute("guest-info", None).await?;
        println!("agent {}", info["version"]);
        println!(
            "host name: {}",
            agent.call(&GuestGetHostName).await?.host_name
        );

        let exec = GuestExecCommand {
            path: "/bin/uname".into(),
            arg: Some(vec!["-a".into()]),
            env: None,
            input_data: None,
            capture_output: Some(GuestExecCaptureOutput::Flag(true)),
        };
        let pid = agent.call(&exec).await?.pid;
        let status = loop {
            let status = agent.call(&GuestExecStatusCommand { pid }).await?;
            if status.exited {
                break status;
            }
            async_io::Timer::after(Duration::from_millis(20)).await;
        };
        println!(
            "uname -a exited with {:?}; output (base64): {:?}",
            status.exitcode, status.out_data
        );

        // Waits for the replies still due before closing: qemu-ga dies of
        // SIGPIPE when a client closes before it could answer.
        agent.disconnect();
        println!("closed: {}", driver.await);
        Ok(())
    })
}
