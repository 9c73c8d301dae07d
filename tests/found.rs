//! README's "What we found" is generated from the catalog and the committed observed records.

mod common;

use common::{kyvtel, root};

#[test]
fn readme_what_we_found_is_what_the_records_generate() {
    let out = kyvtel().arg("found").env_remove("KYVTEL_TODAY").output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).expect("UTF-8");
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    assert!(
        readme.contains(generated.trim_end()),
        "README's \"What we found\" differs from what scenarios/observed/ generates: run `kyvtel found --write \
         README.md` and commit\n--- generated ---\n{generated}"
    );
    // Every catalog scenario is listed.
    for f in kyvtel::scenario::catalog::files(&root().join("scenarios")).expect("catalog") {
        let name = f.file_stem().expect("name").to_string_lossy().into_owned();
        assert!(generated.contains(&format!("[`{name}`]")), "{name} is listed");
    }
}
