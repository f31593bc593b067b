//! A `guest-file-read` of tens of megabytes of base64 through a real
//! qemu-ga, with the message size limit raised, in both adapters.

use std::time::Duration;

use qmp_qapi::qga::{GuestFileClose, GuestFileOpen, GuestFileReadCommand as GuestFileRead};
use tests::{AgentServer, TempDir, base64_decode, within};

/// 16 MiB of file: about 22 MB of base64 in one reply.
const SIZE: usize = 16 * 1024 * 1024;
const LIMIT: usize = 32 * 1024 * 1024;

fn big_file(dir: &TempDir) -> (String, Vec<u8>) {
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 7 + i / 4096) as u8).collect();
    let path = dir.join("big.bin");
    std::fs::write(&path, &data).unwrap();
    (path.display().to_string(), data)
}

#[test]
fn blocking_agent_reads_22_mb_of_base64() {
    within(Duration::from_secs(120), "a large guest-file-read", || {
        let server = AgentServer::start();
        let dir = TempDir::new("qga-large-std");
        let (path, data) = big_file(&dir);
        let opts = qmp_std::Options::new()
            .timeout(Duration::from_secs(60))
            .max_message_size(LIMIT);
        let mut agent = qmp_std::Agent::connect_unix(&server.socket, opts).expect("connect");
        let handle = agent.call(&GuestFileOpen { path, mode: None }).unwrap();
        let count = Some(SIZE as i64);
        let read = agent.call(&GuestFileRead { handle, count }).unwrap();
        agent.call(&GuestFileClose { handle }).unwrap();
        agent.disconnect();
        assert!(read.buf_b64.len() > 22_000_000, "{}", read.buf_b64.len());
        assert_eq!(read.count as usize, SIZE);
        assert!(base64_decode(&read.buf_b64) == data, "content differs");
    });
}

#[test]
fn async_agent_reads_22_mb_of_base64() {
    within(Duration::from_secs(120), "a large guest-file-read", || {
        let server = AgentServer::start();
        let dir = TempDir::new("qga-large-smol");
        let (path, data) = big_file(&dir);
        smol::block_on(async {
            let opts = qmp_smol::Options::new()
                .max_message_size(LIMIT)
                .timeout(Duration::from_secs(60));
            let (agent, driver) = qmp_smol::Agent::connect_unix(&server.socket, opts)
                .await
                .expect("connect");
            let driver = smol::spawn(driver);
            let handle = agent
                .call(&GuestFileOpen { path, mode: None })
                .await
                .unwrap();
            let count = Some(SIZE as i64);
            let read = agent.call(&GuestFileRead { handle, count }).await.unwrap();
            agent.call(&GuestFileClose { handle }).await.unwrap();
            agent.disconnect();
            driver.await;
            assert_eq!(read.count as usize, SIZE);
            assert!(base64_decode(&read.buf_b64) == data, "content differs");
        });
    });
}
