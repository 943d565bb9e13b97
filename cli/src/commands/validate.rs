//! `ocelot validate [FILE] [--branch B]`: checks an ocelot.yml offline and shows every
//! error; with `--branch`, which stages a build of that branch would run
//! ([`branch_plan`]).

mod branch_plan;

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
            let plan = args
                .branch
                .as_deref()
                .map(|branch| branch_plan::plan(&pipeline, branch));
            if args.json {
                let mut value = json!({"file": path, "valid": true, "pipeline": pipeline});
                if let Some(plan) = &plan {
                    value["branch"] = json!(plan);
                }
                println!("{value}");
            } else {
                let stages: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
                println!(
                    "{path}: valid ({} stage(s): {})",
                    stages.len(),
                    stages.join(", ")
                );
                for line in plan.iter().flat_map(branch_plan::lines) {
                    println!("{line}");
                }
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
