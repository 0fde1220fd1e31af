//! Naming an `exec:` implementation by the name its driver gives in its hello, with real
//! drivers: the CPython driver says `cpython`; a driver whose handshake fails gives no name
//! (the run then reports its failure, once).

use std::time::Duration;

use conformance::driver::DriverCommand;
use conformance::exec_names::{hello_name, name_selected};
use conformance::implementations::{Implementation, find_python};
use conformance::workspace_root;

const GUARD: Duration = Duration::from_secs(20);

fn exec(script: &str, args: &[&str]) -> (String, Implementation) {
    let python = find_python().expect("a Python interpreter (set POOLSPEC_PYTHON)");
    let path = workspace_root().join(script);
    let mut words = vec![
        python.display().to_string(),
        "-u".into(),
        path.display().to_string(),
    ];
    words.extend(args.iter().map(|a| (*a).to_owned()));
    let spec = format!("exec:{}", words.join(" "));
    let imp = Implementation {
        name: spec.clone(),
        command: DriverCommand {
            program: words[0].clone(),
            args: words[1..].to_vec(),
            env: vec![("PYTHONDONTWRITEBYTECODE".into(), "1".into())],
        },
    };
    (spec, imp)
}

#[test]
fn a_driver_is_named_by_its_hello_and_a_broken_one_keeps_its_command() {
    let (good_spec, good) = exec(
        "fixtures/drivers/cpython_driver.py",
        &["--pool-class", "Pool"],
    );
    let (bad_spec, bad) = exec("fixtures/drivers/broken/wrong_protocol.py", &[]);
    assert_eq!(hello_name(&good.command, GUARD).as_deref(), Some("cpython"));
    assert_eq!(hello_name(&bad.command, GUARD), None);

    let specs = [good_spec, bad_spec.clone()];
    let probe = |c: &DriverCommand| hello_name(c, GUARD);
    let named = name_selected(vec![good.clone(), bad], &specs, &[], &[], &probe).unwrap();
    let names: Vec<&str> = named.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["cpython", bad_spec.as_str()]);

    // Two drivers that give one name are an error naming both.
    let twice = [specs[0].clone(), format!("{} ", specs[0])];
    let err = name_selected(vec![good.clone(), good], &twice, &[], &[], &probe).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("two implementations are named `cpython`"),
        "{err}"
    );
}
