//! The page shell every console page shares: head, navigation for the person's role, and the
//! sign-out form.

use maud::{DOCTYPE, Markup, html};
use moat_identity::web::SignedIn;

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Dashboard,
    Usage,
    Users,
    AllKeys,
    Invitations,
    Teams,
    Budgets,
    Limits,
    Models,
    Settings,
    Audit,
    Mine,
    Keys,
    Connect,
    None,
}

/// Whether this person's role reads organisation-wide figures (the dashboard). The admin API
/// decides again on every call; this only chooses what the navigation offers.
pub(crate) fn reads_org(person: &SignedIn) -> bool {
    !matches!(person.user.org_role, moat_core::OrgRole::Member)
}

/// Whether this person's role changes the organisation (admins and owners): what offers
/// management forms. The admin API decides again on every call.
pub(crate) fn manages(person: &SignedIn) -> bool {
    matches!(person.user.org_role, moat_core::OrgRole::Admin | moat_core::OrgRole::Owner)
}

/// A whole page for a signed-in person.
pub(crate) fn page(person: &SignedIn, section: Section, title: &str, body: &Markup) -> Markup {
    let entries: Vec<(Section, &str, &str)> = [
        reads_org(person).then_some((Section::Dashboard, "/ui", "Dashboard")),
        reads_org(person).then_some((Section::Usage, "/ui/usage", "Usage")),
        reads_org(person).then_some((Section::Users, "/ui/users", "Users")),
        reads_org(person).then_some((Section::AllKeys, "/ui/all-keys", "All keys")),
        manages(person).then_some((Section::Invitations, "/ui/invitations", "Invitations")),
        Some((Section::Teams, "/ui/teams", "Teams")),
        reads_org(person).then_some((Section::Budgets, "/ui/budgets", "Budgets")),
        reads_org(person).then_some((Section::Limits, "/ui/limits", "Limits")),
        reads_org(person).then_some((Section::Models, "/ui/models", "Models")),
        reads_org(person).then_some((Section::Settings, "/ui/settings", "Settings")),
        reads_org(person).then_some((Section::Audit, "/ui/audit", "Audit log")),
        Some((Section::Mine, "/ui/me", "My usage")),
        Some((Section::Keys, "/ui/keys", "My keys")),
        Some((Section::Connect, "/ui/connect", "Connect an agent")),
    ]
    .into_iter()
    .flatten()
    .collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui" { "moat" }
                    nav aria-label="Console" {
                        ul {
                            @for (entry, href, label) in &entries {
                                li {
                                    @if *entry == section {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(person.session.csrf);
                        span.who { (person.user.email) " · " (person.user.org_role.as_str()) }
                        button type="submit" { "Sign out" }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// Every page's head: its title, the console's stylesheet, and its script.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · moat" }
            link rel="stylesheet" href=(crate::assets::CSS_PATH);
            script src=(crate::assets::JS_PATH) defer {}
        }
    }
}

/// A labelled text input, with `error` beside it (and tied to it for assistive technology).
pub(crate) fn field(name: &str, label: &str, value: &str, kind: &str, hint: &str, error: Option<&str>) -> Markup {
    html! {
        div {
            label for=(name) { (label) }
            input id=(name) name=(name) type=(kind) value=(value) placeholder=(hint)
                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| format!("{name}-error"))];
            @if let Some(message) = error { p.field-error id=(format!("{name}-error")) role="alert" { (message) } }
        }
    }
}

/// A page that only says something, for a person or before sign-in.
pub(crate) fn message(person: Option<&SignedIn>, title: &str, text: &str) -> Markup {
    let body = html! { p #message { (text) } };
    match person {
        Some(person) => page(person, Section::None, title, &body),
        None => html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body { main #main { h1 { (title) } (body) } }
            }
        },
    }
}
