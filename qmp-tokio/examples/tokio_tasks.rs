//! Tasks on a multi-threaded tokio runtime share one QMP connection.
//!
//! It starts `qemu-system-x86_64 -machine none -nodefaults -display none -S`
//! (or `$QEMU`), which connects back to a socket this program listens on;
//! then eight tasks query the status at once, the main task resumes the VM
//! and waits for the `RESUME` event it caused, and finally quits QEMU.
//!
//! ```sh
//! cargo run -p qmp-tokio --example tokio_tasks
//! ```

use std::process::Stdio;
use std::time::Duration;

use qmp_qapi::qmp::{Cont, QueryStatus, Quit};
use qmp_tokio::{Listener, Options};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("qmp-tokio-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // Listening before QEMU starts: it connects to us, no start-up race.
    let listener = Listener::bind(dir.join("qmp.sock"))?;
    let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
    let mut child = tokio::process::Command::new(&qemu)
        .args(["-machine", "none", "-nodefaults", "-display", "none", "-S"])
        .arg("-qmp")
        .arg(format!("unix:{},server=off", listener.path().display()))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {qemu}: {e}"))?;
    let (qmp, driver) = listener
        .accept(Options::default().timeout(Duration::from_secs(5)))
        .await?;
    let driver = tokio::spawn(driver);
    drop(listener);
    std::fs::remove_dir_all(&dir)?;
    println!("connected; oob negotiated: {}", qmp.oob_enabled());

    let mut set = tokio::task::JoinSet::new();
    for n in 0..8 {
        let qmp = qmp.clone();
        set.spawn(async move { (n, qmp.call(&QueryStatus).await) });
    }
    while let Some(joined) = set.join_next().await {
        let (n, status) = joined?;
        println!("task {n}: {}", status?.status);
    }

    // Waiting starts here, before the command that causes the event.
    let resumed = qmp.wait_event("RESUME", Duration::from_secs(5));
    qmp.call(&Cont).await?;
    println!("event: {}", resumed.await?.to_value());

    qmp.call(&Quit).await?;
    println!("driver ended: {}", driver.await?);
    println!("QEMU exited: {}", child.wait().await?);
    Ok(())
}
