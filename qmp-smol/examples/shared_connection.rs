//! Several tasks share one QMP connection while a subscriber watches the
//! run state.
//!
//! It starts `qemu-system-x86_64 -machine none -nodefaults -display none -S`
//! (or `$QEMU`), which connects to a socket this program listens on, then:
//! a watcher task prints every `STOP` and `RESUME`, four tasks query the
//! status concurrently, the main task resumes and stops the VM, waits for
//! the `STOP` event, and quits QEMU.
//!
//! ```sh
//! cargo run -p qmp-smol --example shared_connection
//! ```

use std::process::{Command, Stdio};
use std::time::Duration;

use futures_lite::StreamExt;
use qmp_qapi::qmp::{Cont, QueryStatus, Quit, Stop};
use qmp_smol::{EventFilter, Listener, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let dir = std::env::temp_dir().join(format!("qmp-smol-example-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        // Listen first and let QEMU connect to us: no race with its start-up.
        let listener = Listener::bind(dir.join("qmp.sock"))?;
        let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
        let mut child = Command::new(&qemu)
            .args(["-machine", "none", "-nodefaults", "-display", "none", "-S"])
            .arg("-qmp")
            .arg(format!("unix:{},server=off", listener.path().display()))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {qemu}: {e}"))?;

        let options = Options::default().timeout(Duration::from_secs(5));
        let (qmp, driver) = listener.accept(options).await?;
        let driver = smol::spawn(driver);
        drop(listener);
        std::fs::remove_dir_all(&dir)?;
        if let Some(greeting) = qmp.greeting() {
            println!(
                "connected to QEMU {} (oob: {})",
                greeting.version,
                qmp.oob_enabled()
            );
        }

        // A subscriber in a task of its own; its stream ends at the close.
        let mut run_state = qmp.subscribe(EventFilter::names(["STOP", "RESUME"]));
        let watcher = smol::spawn(async move {
            while let Some(event) = run_state.next().await {
                println!("watcher: {} at {:?}", event.name, event.timestamp);
            }
            println!(
                "watcher: stream ended ({} events missed)",
                run_state.lagged()
            );
        });

        // Several tasks sharing the connection; their calls are pipelined.
        let tasks: Vec<_> = (0..4)
            .map(|n| {
                let qmp = qmp.clone();
                smol::spawn(async move {
                    let status = qmp.call(&QueryStatus).await?;
                    println!("task {n}: {} (running: {})", status.status, status.running);
                    Ok::<_, qmp_smol::Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }

        qmp.call(&Cont).await?;
        // Subscribe before causing the event, so it cannot be missed.
        let stopped = qmp.wait_event("STOP", Duration::from_secs(5));
        qmp.call(&Stop).await?;
        println!("main: {}", stopped.await?.to_value());

        qmp.call(&Quit).await?;
        println!("driver: {}", driver.await);
        watcher.await;
        println!("QEMU exited: {}", child.wait()?);
        Ok(())
    })
}
