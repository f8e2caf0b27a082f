//! `Watched<T>`: reload on change, keep the old value on failure.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use haraka_config::{ConfigDir, ListSpec, Watched};

use crate::{root, write};

fn assert_send_sync<T: Send + Sync>() {}

/// A list with Haraka's shipped default, as a plugin declares it.
const HOST_LIST: ListSpec = ListSpec {
    name: "host_list",
    shipped: &["haraka.local"],
    shipped_in_flat: true,
    alias: None,
};

#[test]
fn reloads_when_a_file_changes() {
    assert_send_sync::<Watched<Vec<String>>>();
    let dir = root(&[("config/host_list", "a.example\n")]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let (cd2, n) = (cd.clone(), Arc::clone(&loads));
    let w = Watched::new(vec![cd.path("host_list")], move || {
        n.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(cd2.plugin_list(&HOST_LIST))
    })
    .unwrap()
    .with_interval(Duration::ZERO);
    assert_eq!(*w.get(), ["a.example"]);
    assert_eq!(*w.get(), ["a.example"]);
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "unchanged files are not re-read"
    );

    write(dir.path(), "config/host_list", "a.example\nb.example\n");
    assert_eq!(*w.get(), ["a.example", "b.example"]);
    assert_eq!(loads.load(Ordering::SeqCst), 2);

    // Deleting the file is a change too: back to Haraka's shipped list.
    std::fs::remove_file(dir.path().join("config/host_list")).unwrap();
    assert_eq!(*w.get(), ["haraka.local"]);
    // …and so is creating it again.
    write(dir.path(), "config/host_list", "c.example\n");
    assert_eq!(*w.get(), ["c.example"]);
}

#[test]
fn a_failing_loader_keeps_the_previous_value() {
    let dir = root(&[("config/tls.ini", "key=a\n")]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    let cd2 = cd.clone();
    let w = Watched::new(vec![cd.path("tls.ini")], move || {
        cd2.ini("tls.ini")
            .map(|i| i.get("main", "key").unwrap_or("").to_owned())
    })
    .unwrap()
    .with_interval(Duration::ZERO);
    assert_eq!(*w.get(), "a");
    write(dir.path(), "config/tls.ini", "key=b\nnot valid!\n");
    assert_eq!(*w.get(), "a");
    assert!(
        !w.reload_if_changed(),
        "the failed version is not retried until it changes"
    );
    write(dir.path(), "config/tls.ini", "key=c\n");
    assert!(w.reload_if_changed());
    assert_eq!(*w.get(), "c");
}

#[test]
fn the_first_load_error_is_returned() {
    let dir = root(&[("config/tls.ini", "!\n")]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    let p = cd.path("tls.ini");
    let e = Watched::new(vec![p], move || cd.ini("tls.ini")).unwrap_err();
    assert_eq!(e.0[0].line, 1);
}

#[test]
fn checks_at_most_once_per_interval() {
    let dir = root(&[("v", "1")]);
    let path = dir.path().join("v");
    let p2 = path.clone();
    let w = Watched::new(vec![path.clone()], move || std::fs::read_to_string(&p2))
        .unwrap()
        .with_interval(Duration::from_secs(3600));
    assert_eq!(*w.get(), "1");
    std::fs::write(&path, "22").unwrap();
    // Within the interval `get` does not look at the file…
    assert_eq!(*w.get(), "1");
    // …but an explicit check does.
    assert!(w.reload_if_changed());
    assert_eq!(*w.get(), "22");
}

#[test]
fn the_loader_can_name_its_files() {
    let dir = root(&[
        ("config/tls.ini", "cert=one.pem\n"),
        ("config/one.pem", "1"),
        ("config/two.pem", "22"),
    ]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    let cd2 = cd.clone();
    let w = Watched::with_paths(move || -> Result<(String, Vec<PathBuf>), String> {
        let ini = cd2.ini("tls.ini").map_err(|e| e.to_string())?;
        let cert = ini.get("main", "cert").unwrap_or("").to_owned();
        let bytes = cd2
            .read_bytes(&cert)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        Ok((
            String::from_utf8_lossy(&bytes).into_owned(),
            vec![cd2.path("tls.ini"), cd2.path(&cert)],
        ))
    })
    .unwrap()
    .with_interval(Duration::ZERO);
    assert_eq!(*w.get(), "1");
    write(dir.path(), "config/one.pem", "111");
    assert_eq!(*w.get(), "111", "a renewed certificate is picked up");
    write(dir.path(), "config/tls.ini", "cert=two.pem\n");
    assert_eq!(*w.get(), "22");
    assert!(w.paths().contains(&dir.path().join("config/two.pem")));
    let shared = Arc::new(w);
    let t = {
        let w = Arc::clone(&shared);
        std::thread::spawn(move || w.get().len())
    };
    assert_eq!(t.join().unwrap(), 2);
}
