use std::process::ExitCode;
use tsusen::commands::{self, EXIT_USAGE};

const HELP: &str = "\
Usage: tsusen COMMAND [OPTIONS]

Records, day by day, who from the outside knocks on which of our ports.

Commands:
  run       capture live traffic into the daily CSV files
  replay    read pcap/pcapng files as if captured live
  serve     serve the report page and API over the daily files (no capture)
  collect   take NetFlow v5/v9 and IPFIX from routers into the daily CSV files

'tsusen COMMAND --help' tells more.";

fn main() -> ExitCode {
    tsusen::heap::tune();
    tsusen::logger::init(log::LevelFilter::Info);
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("{HELP}");
        return ExitCode::from(EXIT_USAGE);
    }
    let command = args.remove(0);
    match command.as_str() {
        "run" => commands::run::main(args),
        "replay" => commands::replay::main(args),
        "serve" => tsusen::report::serve_cmd::main(args),
        "collect" => commands::collect::main(args),
        "-h" | "--help" | "help" => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        "-V" | "--version" => {
            println!("tsusen {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("tsusen: unknown command '{other}'\n\n{HELP}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
