use super::*;

fn actor(id: &str, role: OrgRole, teams: &[(&str, TeamRole)]) -> Actor {
    Actor {
        user_id: Some(id.to_owned()),
        org_role: role,
        teams: teams.iter().map(|(t, r)| ((*t).to_owned(), *r)).collect(),
    }
}

fn user(id: &str, role: OrgRole) -> KeyOwner {
    KeyOwner::User { id: id.to_owned(), role }
}

#[test]
fn roles_round_trip_and_rank() {
    for role in [OrgRole::Owner, OrgRole::Admin, OrgRole::Member, OrgRole::Viewer] {
        assert_eq!(OrgRole::parse(role.as_str()), Some(role));
    }
    for role in [TeamRole::TeamAdmin, TeamRole::Member] {
        assert_eq!(TeamRole::parse(role.as_str()), Some(role));
    }
    assert!(OrgRole::Owner > OrgRole::Admin && OrgRole::Admin > OrgRole::Member && OrgRole::Member > OrgRole::Viewer);
    assert_eq!(OrgRole::parse("root"), None);
}

#[test]
fn nobody_raises_their_own_role_or_acts_above_it() {
    let admin = actor("ada", OrgRole::Admin, &[]);
    let set = |user, from, to| Action::SetRole { user, from, to };
    assert!(admin.may(&set("ada", OrgRole::Admin, OrgRole::Owner)).is_err(), "own role");
    assert!(admin.may(&set("ada", OrgRole::Admin, OrgRole::Member)).is_err(), "even downwards");
    assert!(admin.may(&set("bob", OrgRole::Member, OrgRole::Owner)).is_err(), "above own rank");
    assert!(admin.may(&set("olga", OrgRole::Owner, OrgRole::Member)).is_err(), "an owner is out of reach");
    assert!(admin.may(&set("bob", OrgRole::Member, OrgRole::Admin)).is_ok());
    assert!(admin.may(&Action::CreateUser(OrgRole::Owner)).is_err());
    assert!(admin.may(&Action::SetActive { user: "olga", role: OrgRole::Owner }).is_err());
    assert!(admin.may(&Action::SetActive { user: "ada", role: OrgRole::Admin }).is_err(), "not oneself");
    let owner = actor("olga", OrgRole::Owner, &[]);
    assert!(owner.may(&set("ada", OrgRole::Admin, OrgRole::Owner)).is_ok());
    let member = actor("bob", OrgRole::Member, &[]);
    assert!(member.may(&Action::CreateUser(OrgRole::Viewer)).is_err());
    assert!(member.may(&set("carl", OrgRole::Viewer, OrgRole::Viewer)).is_err());
}

#[test]
fn team_admins_manage_only_their_own_teams() {
    let lead = actor("tina", OrgRole::Member, &[("red", TeamRole::TeamAdmin), ("blue", TeamRole::Member)]);
    assert!(lead.may(&Action::ManageMembers { team: "red", user: "bob" }).is_ok());
    assert!(lead.may(&Action::ManageMembers { team: "red", user: "tina" }).is_err(), "not their own membership");
    assert!(lead.may(&Action::ManageMembers { team: "blue", user: "bob" }).is_err(), "only a member there");
    assert!(lead.may(&Action::ManageMembers { team: "green", user: "bob" }).is_err());
    assert!(lead.may(&Action::ManageTeams).is_err());
    assert!(lead.may(&Action::ReadTeam("blue")).is_ok() && lead.may(&Action::ReadTeam("green")).is_err());
    let red = KeyOwner::Team("red".into());
    let blue = KeyOwner::Team("blue".into());
    assert!(lead.may(&Action::CreateKey { owner: &red, admin_scope: false }).is_ok());
    assert!(lead.may(&Action::ManageKey(&blue)).is_err(), "a member does not manage a team's keys");
    assert!(lead.sees_key(&blue), "but sees them");
    assert!(!lead.sees_key(&KeyOwner::Team("green".into())), "no member reads another team's keys");
    assert!(!lead.sees_key(&user("bob", OrgRole::Member)), "nor another member's");
}

#[test]
fn readers_of_the_organisation_see_every_key_and_manage_only_their_share() {
    let viewer = actor("vic", OrgRole::Viewer, &[]);
    let admin = actor("ada", OrgRole::Admin, &[]);
    let owners_key = user("olga", OrgRole::Owner);
    for owner in [&owners_key, &user("bob", OrgRole::Member), &KeyOwner::Team("green".into()), &KeyOwner::Unowned] {
        assert!(viewer.sees_key(owner) && admin.sees_key(owner), "{owner:?}");
        assert!(viewer.may(&Action::ManageKey(owner)).is_err(), "a viewer revokes nothing: {owner:?}");
    }
    assert!(admin.may(&Action::ManageKey(&owners_key)).is_err(), "an admin sees an owner's key, and leaves it");
    assert!(admin.may(&Action::ManageKey(&KeyOwner::Team("green".into()))).is_ok());
}

#[test]
fn keys_follow_their_owner() {
    let member = actor("bob", OrgRole::Member, &[]);
    let bob = user("bob", OrgRole::Member);
    assert!(member.may(&Action::CreateKey { owner: &bob, admin_scope: false }).is_ok(), "a personal key");
    assert!(member.may(&Action::CreateKey { owner: &bob, admin_scope: true }).is_err(), "no admin scope");
    assert!(member.may(&Action::ManageKey(&user("carl", OrgRole::Member))).is_err());
    assert!(member.may(&Action::ManageKey(&KeyOwner::Unowned)).is_err());
    let admin = actor("ada", OrgRole::Admin, &[]);
    assert!(admin.may(&Action::ManageKey(&user("bob", OrgRole::Member))).is_ok());
    assert!(
        admin.may(&Action::CreateKey { owner: &user("olga", OrgRole::Owner), admin_scope: true }).is_err(),
        "an admin cannot mint an owner's key"
    );
    let viewer = actor("vic", OrgRole::Viewer, &[]);
    let vic = user("vic", OrgRole::Viewer);
    assert!(viewer.may(&Action::CreateKey { owner: &vic, admin_scope: true }).is_ok(), "a read-only admin key");
    assert!(viewer.may(&Action::CreateKey { owner: &vic, admin_scope: false }).is_err());
    assert!(viewer.may(&Action::ReadOrg).is_ok() && viewer.may(&Action::ManageTeams).is_err());
    assert!(
        Actor::break_glass().may(&Action::SetRole { user: "olga", from: OrgRole::Owner, to: OrgRole::Admin }).is_ok()
    );
}
