//! `local-s3 ROOT`: the test S3-compatible server as a process, for benchmark scripts. Prints
//! its endpoint on the first line of stdout and serves until killed. Credentials: the test key
//! and secret of this crate.

fn main() {
    let Some(root) = std::env::args().nth(1) else {
        eprintln!("usage: local-s3 ROOT   (serves the buckets that are folders of ROOT)");
        std::process::exit(2);
    };
    let server = testkit::LocalS3::start(std::path::Path::new(&root));
    println!("http://{}", server.address);
    loop {
        std::thread::park();
    }
}
