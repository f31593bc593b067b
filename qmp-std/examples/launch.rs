//! Starts a paused QEMU, prints its status, resumes it, waits for the
//! `RESUME` event and shuts it down. `$QEMU` picks another binary.
//!
//! ```sh
//! cargo run -p qmp-std --example launch
//! ```

use core::time::Duration;

use qmp_qapi::qmp::QueryStatus;
use qmp_std::Qemu;

fn main() -> Result<(), qmp_std::Error> {
    let mut qemu = Qemu::builder().arg("-S").launch()?;
    if let Some(g) = qemu.greeting() {
        println!("QEMU {} (pid {})", g.version, qemu.pid());
    }
    println!("status: {:?}", qemu.call(&QueryStatus)?.status);
    qemu.execute("cont", None)?;
    let event = qemu
        .with_timeout(Duration::from_secs(5))
        .wait_event("RESUME")?;
    println!("event {} at {:?}", event.name, event.timestamp);
    let status = qemu.shutdown()?;
    println!("QEMU exited: {status}");
    Ok(())
}
