//! The `docker` template, measured: create → agent healthy with the workspace image
//! cached, against `docker run` of the same image alone, in the same run. The first image
//! build is timed too (it only happens when the engine lacks the image: run
//! `docker rmi hangar-workspace:bookworm-1` first to see it).

mod common;

use std::time::Instant;

use common::*;

const IMAGE: &str = "hangar-workspace:bookworm-1";

async fn docker(args: &[&str]) {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::main]
async fn main() {
    let runs = if full() { 5 } else { 1 };
    let s = server("0.0.0.0:0").await;
    let module = tempfile::tempdir().unwrap();
    hangar::cli::templates::write_builtin("docker", module.path()).unwrap();
    push(&s.client, "docker", module.path()).await;

    // The first workspace builds the image when the engine lacks it.
    let t = Instant::now();
    let had_image = tokio::process::Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .await
        .unwrap()
        .status
        .success();
    create_until_healthy(&s.client, "warm", "docker", &[]).await;
    println!(
        "first workspace, {}: {:.1} s",
        if had_image {
            "image cached"
        } else {
            "image built"
        },
        t.elapsed().as_secs_f64()
    );
    delete(&s.client, "warm").await;

    let (mut created, mut bare) = (Vec::new(), Vec::new());
    for n in 0..runs {
        let name = format!("bench-{n}");
        created.push(create_until_healthy(&s.client, &name, "docker", &[]).await);
        delete(&s.client, &name).await;
        let t = Instant::now();
        docker(&["run", "--rm", IMAGE, "true"]).await;
        bare.push(t.elapsed());
    }
    let (c, b) = (median(created), median(bare));
    println!("docker workspace, image cached, median of {runs}:");
    println!("  create -> agent healthy       {:8.0} ms", ms(c));
    println!("  docker run --rm IMAGE true    {:8.0} ms", ms(b));
    println!(
        "  ratio                         {:8.1}",
        c.as_secs_f64() / b.as_secs_f64().max(1e-9)
    );
}
