//! The configuration contract, checked on the synthesized template: every variable a
//! function reads (`config::FUNCTIONS`) is set for it by the template, unless it has a
//! default that is safe on AWS (`config::SAFE_DEFAULTS`) or is read only locally
//! (`config::LOCAL_ONLY`, which the template must never set); every variable the
//! template sets for a function is one it reads.
//!
//! The template test is ignored in the unit run: `infra/check.sh` synthesizes
//! `infra/cdk.out/TradeflowStack.template.json` first, then tests/run.sh runs
//! `cargo test -p tradeflow-adapters --test env_contract -- --ignored`
//! (`TRADEFLOW_TEMPLATE` names another template).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};
use tradeflow_adapters::config::{FUNCTIONS, LOCAL_ONLY, RUNTIME, SAFE_DEFAULTS, function_env};

type Reads<'a> = &'a dyn Fn(&str) -> Option<Vec<&'static str>>;

fn contract_reads(function: &str) -> Option<Vec<&'static str>> {
    function_env(function).map(|f| f.names())
}

/// Function name -> the variable names its template resource sets.
fn template_env(template: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let resources = template["Resources"].as_object().expect("Resources");
    resources
        .values()
        .filter(|r| r["Type"] == "AWS::Lambda::Function")
        .map(|r| {
            let p = &r["Properties"];
            let name = p["FunctionName"]
                .as_str()
                .expect("every function has a literal FunctionName")
                .to_string();
            let vars = p["Environment"]["Variables"]
                .as_object()
                .map(|v| v.keys().cloned().collect())
                .unwrap_or_default();
            (name, vars)
        })
        .collect()
}

/// Every way the template and the code's declarations disagree.
fn violations(template: &Value, reads: Reads<'_>) -> Vec<String> {
    let deployed = template_env(template);
    let mut out = Vec::new();
    for (function, set) in &deployed {
        let Some(read) = reads(function) else {
            out.push(format!(
                "{function}: in the template, not in config::FUNCTIONS"
            ));
            continue;
        };
        for name in set {
            if RUNTIME.contains(&name.as_str()) {
                out.push(format!(
                    "{function}: the template sets {name}, which only the Lambda runtime sets"
                ));
            } else if LOCAL_ONLY.contains(&name.as_str()) {
                out.push(format!(
                    "{function}: the template sets {name}, a local-only variable"
                ));
            } else if !read.contains(&name.as_str()) {
                out.push(format!(
                    "{function}: the template sets {name}, which the function never reads"
                ));
            }
        }
        for name in read {
            let defaulted = SAFE_DEFAULTS.iter().any(|(d, _)| *d == name);
            if !set.contains(name) && !defaulted && !LOCAL_ONLY.contains(&name) {
                out.push(format!(
                    "{function}: reads {name}, which the template does not set and which has no default safe on AWS"
                ));
            }
        }
    }
    for f in FUNCTIONS {
        if !deployed.contains_key(f.function) {
            out.push(format!(
                "{}: in config::FUNCTIONS, not in the template",
                f.function
            ));
        }
    }
    out
}

fn template_path() -> PathBuf {
    std::env::var_os("TRADEFLOW_TEMPLATE").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../infra/cdk.out/TradeflowStack.template.json")
        },
        PathBuf::from,
    )
}

/// A template as the contract would have it: each function sets exactly what it
/// reads, less the defaulted and local-only names.
fn template_from_contract() -> Value {
    let resources: serde_json::Map<String, Value> = FUNCTIONS
        .iter()
        .map(|f| {
            let vars: serde_json::Map<String, Value> = f
                .names()
                .into_iter()
                .filter(|n| !LOCAL_ONLY.contains(n) && !SAFE_DEFAULTS.iter().any(|(d, _)| d == n))
                .map(|n| (n.to_string(), json!("x")))
                .collect();
            (
                f.function.replace('-', ""),
                json!({"Type": "AWS::Lambda::Function",
                       "Properties": {"FunctionName": f.function, "Environment": {"Variables": vars}}}),
            )
        })
        .collect();
    json!({ "Resources": resources })
}

/// The contract with one more read for `function`.
fn reading_also(
    function: &'static str,
    name: &'static str,
) -> impl Fn(&str) -> Option<Vec<&'static str>> {
    move |f| {
        let mut names = contract_reads(f)?;
        if f == function {
            names.push(name);
        }
        Some(names)
    }
}

#[test]
fn a_template_that_sets_what_each_function_reads_passes() {
    assert_eq!(
        violations(&template_from_contract(), &contract_reads),
        Vec::<String>::new()
    );
}

#[test]
fn reading_one_unset_variable_fails_the_check() {
    let reads = reading_also("record-execution", "ORDERS_TABLE");

    let found = violations(&template_from_contract(), &reads);

    assert_eq!(
        found,
        [
            "record-execution: reads ORDERS_TABLE, which the template does not set and which has no default safe on AWS"
        ]
    );
}

#[test]
fn setting_a_variable_nobody_reads_or_a_local_only_one_fails_the_check() {
    let mut template = template_from_contract();
    let vars = template["Resources"]["recordexecution"]["Properties"]["Environment"]["Variables"]
        .as_object_mut()
        .unwrap();
    vars.insert("LLM_PROVIDER".into(), json!("rules"));
    vars.insert(
        "IBKR_BASE_URL".into(),
        json!("http://127.0.0.1:5001/v1/api"),
    );

    let found = violations(&template, &contract_reads);

    assert_eq!(
        found,
        [
            "record-execution: the template sets IBKR_BASE_URL, a local-only variable",
            "record-execution: the template sets LLM_PROVIDER, which the function never reads",
        ]
    );
}

#[test]
#[ignore = "needs the synthesized template (infra/check.sh); tests/run.sh runs it"]
fn the_synthesized_template_gives_each_function_what_it_reads_and_nothing_else() {
    let path = template_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run infra/check.sh to synthesize it)",
            path.display()
        )
    });
    let template: Value = serde_json::from_str(&text).unwrap();

    let found = violations(&template, &contract_reads);
    let with_an_unset_read = violations(&template, &reading_also("parse-signal", "TRADES_TABLE"));

    assert_eq!(found, Vec::<String>::new(), "{}", path.display());
    assert_eq!(
        with_an_unset_read,
        [
            "parse-signal: reads TRADES_TABLE, which the template does not set and which has no default safe on AWS"
        ]
    );
    println!(
        "{}: {} functions, {} variables set, all read; every read set or defaulted",
        path.display(),
        template_env(&template).len(),
        template_env(&template)
            .values()
            .map(BTreeSet::len)
            .sum::<usize>()
    );
}
