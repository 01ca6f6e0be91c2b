//! Entry point. Terraform starts this same binary as its provider (it sets the go-plugin
//! handshake cookie); everyone else gets the CLI.

fn main() -> std::process::ExitCode {
    if std::env::var_os(hangar::provider::MAGIC_COOKIE_ENV).is_some() {
        return match hangar::provider::serve_blocking() {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("hangar provider: {err:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if std::env::var_os(hangar::isolate::CHILD_ENV).is_some() {
        return hangar::isolate::child_main();
    }
    hangar::cli::main()
}
