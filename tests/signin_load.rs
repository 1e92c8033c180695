//! Sign-in under load while the secret store is slow: its file lock held by another process
//! (a `ward user` command, a backup tool). Sign-ins wait for the lock; the rest of ward must
//! not, which holds only when the store's locks and disk work run off the async workers.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_held_store_lock_stalls_sign_ins_but_not_the_rest_of_ward() {
    let ehr = Ehr::start();
    let ward = Ward::start(&format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [login]\nlockout_after = 100\nattempts_per_minute = 1000\n\
         [roles]\nclinician = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/logo.png\"\nallow = \"public\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n",
        ehr.url()
    ));
    let secret = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let public = ward.client(false);
    assert_eq!(
        public
            .get(ward.url("/logo.png"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Another process holds the secret store's lock for a while.
    let lock = std::fs::File::create(ward.site.path("state/.secrets.json.lock")).unwrap();
    lock.lock().unwrap();

    // Many wrong passwords at once: each must count, so each waits for the lock.
    let mut attempts = Vec::new();
    for _ in 0..48 {
        let b = Browser::new(&ward);
        attempts.push(tokio::spawn(async move {
            sign_in_with(&b, "dr_lee", "not the password at all", &[], 0).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        attempts.iter().any(|a| !a.is_finished()),
        "no sign-in waited for the lock"
    );

    // Meanwhile everything else is served at once.
    for _ in 0..3 {
        let started = Instant::now();
        let resp = tokio::time::timeout(
            Duration::from_secs(3),
            public.get(ward.url("/logo.png")).send(),
        )
        .await
        .expect("ward stalled while the secret store was locked")
        .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    drop(lock);
    for a in attempts {
        assert_eq!(a.await.unwrap(), 401);
    }
    // Every failure was counted, none lost to a race, and the right password still works.
    let failed = ward::users::SecretStore::open(&ward.site.path("state"))
        .unwrap()
        .read()
        .unwrap()
        .users["dr_lee"]
        .failed_logins;
    assert_eq!(failed, 48);
    let b = Browser::new(&ward);
    assert_eq!(sign_in_with(&b, "dr_lee", PW, &secret, 0).await, 303);
    assert_eq!(b.get("/patients/1001/chart").await.status(), 200);
}
