//! Command-line options: `--name value`, `--name=value` and repeatable options, with errors
//! that name the option. A usage error exits with status 2.

use std::collections::VecDeque;
use std::process::ExitCode;

pub struct Usage(pub String);

/// Which options a subcommand takes, and whether each wants a value.
pub struct Spec {
    pub command: &'static str,
    pub help: &'static str,
    pub valued: &'static [&'static str],
    pub flags: &'static [&'static str],
}

#[derive(Default)]
pub struct Parsed {
    pub options: Vec<(String, String)>,
    pub flags: Vec<String>,
    pub positional: Vec<String>,
    pub help: bool,
}

impl Parsed {
    pub fn last(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.options
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

pub fn parse(spec: &Spec, args: Vec<String>) -> Result<Parsed, Usage> {
    let mut args: VecDeque<String> = args.into();
    let mut p = Parsed::default();
    let usage = |m: String| {
        Usage(format!(
            "tsusen {}: {m}\nTry 'tsusen {} --help'.",
            spec.command, spec.command
        ))
    };
    while let Some(a) = args.pop_front() {
        if a == "--" {
            p.positional.extend(args.drain(..));
            break;
        }
        if a == "--help" || a == "-h" {
            p.help = true;
            continue;
        }
        if !a.starts_with('-') || a == "-" {
            p.positional.push(a);
            continue;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        if spec.valued.contains(&name.as_str()) {
            let value = match inline {
                Some(v) => v,
                None => args
                    .pop_front()
                    .ok_or_else(|| usage(format!("option '{name}' needs a value")))?,
            };
            p.options.push((name, value));
        } else if spec.flags.contains(&name.as_str()) && inline.is_none() {
            p.flags.push(name);
        } else {
            return Err(usage(format!("unknown option '{a}'")));
        }
    }
    Ok(p)
}

/// Parses a subcommand's arguments. `Err` carries the exit status when there is nothing more
/// to do: the help was printed (0), or a usage error reported (2).
pub fn parse_or_exit(spec: &Spec, args: Vec<String>) -> Result<Parsed, ExitCode> {
    match parse(spec, args) {
        Ok(p) if p.help => {
            println!("{}", spec.help);
            Err(ExitCode::SUCCESS)
        }
        Ok(p) => Ok(p),
        Err(u) => {
            eprintln!("{}", u.0);
            Err(ExitCode::from(2))
        }
    }
}
