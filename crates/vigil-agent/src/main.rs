//! `vigil-agent`: see `vigil_agent::cli`.

fn main() -> std::process::ExitCode {
    vigil_agent::cli::main()
}
