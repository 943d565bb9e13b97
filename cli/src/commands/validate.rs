//! `ocelot validate [FILE]`: checks an ocelot.yml offline and shows every error.

use crate::args::ValidateArgs;
use crate::client::CliError;
use crate::exit::ExitStatus;
use serde_json::json;

pub(crate) fn run(args: ValidateArgs) -> Result<ExitStatus, CliError> {
    let path = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::new(ExitStatus::Usage, format!("cannot read {path}: {e}")))?;
    match ocelot_domain::pipeline::parse(&text) {
        Ok(pipeline) => {
            if args.json {
                println!(
                    "{}",
                    json!({"file": path, "valid": true, "pipeline": pipeline})
                );
            } else {
                let stages: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
                println!(
                    "{path}: valid ({} stage(s): {})",
                    stages.len(),
                    stages.join(", ")
                );
            }
            Ok(ExitStatus::Passed)
        }
        Err(errors) => {
            if args.json {
                let list: Vec<_> = errors
                    .iter()
                    .map(|e| json!({"line": e.line, "column": e.column, "field": e.field, "message": e.message, "hint": e.hint}))
                    .collect();
                println!("{}", json!({"file": path, "valid": false, "errors": list}));
            } else {
                for error in errors.iter() {
                    println!("{path}:{error}");
                }
                eprintln!("{path}: {} error(s)", errors.len());
            }
            Ok(ExitStatus::Failed)
        }
    }
}
