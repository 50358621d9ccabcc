//! The welcome worker without a database (`bildad::testing::work`): it sends through the
//! app's mailer, reached through the registry's state, and greets a retry differently.

use bildad::testing::{run_info, work, work_as};
use bildad_example_app::{Mail, Mailer, Welcome, registry};

#[tokio::test]
async fn welcome_worker_sends_through_the_app_mailer() {
    let mailer = Mailer::default();
    let registry = registry(mailer.clone());
    let welcome = || Welcome {
        email: "ann@example.com".into(),
    };

    let out = work(&registry, welcome()).await.unwrap().unwrap();
    assert_eq!(out["to"], "ann@example.com");
    let mut retry = run_info::<Welcome>();
    retry.retry = 1;
    work_as(&registry, welcome(), retry).await.unwrap();

    let mail = |subject: &str| Mail {
        to: "ann@example.com".into(),
        subject: subject.into(),
    };
    assert_eq!(
        mailer.sent(),
        [mail("Welcome!"), mail("Welcome (sorry for the delay)!")]
    );
}

/// An e-mail the type's schema refuses fails the run permanently, and sends nothing.
#[tokio::test]
async fn welcome_worker_refuses_what_the_schema_refuses() {
    let mailer = Mailer::default();
    let e = work(
        &registry(mailer.clone()),
        Welcome {
            email: "no-at-sign".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert!(mailer.sent().is_empty());
}
