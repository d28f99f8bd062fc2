//! Filtering, sorting, paging and search, executed by the database.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ENTERPRISE, TestApp, USER_SCHEMA, assert_scim_error, json_body, spawn_app};

async fn create(app: &TestApp, body: Value) -> Value {
    let response = app.post("/scim/v2/Users", &body).await;
    assert_eq!(response.status(), 201, "{body}");
    response.json().await.expect("json")
}

/// Three users with varied attributes.
async fn seed(app: &TestApp) -> [Value; 3] {
    let bjensen = create(
        app,
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE], "userName": "bjensen", "externalId": "E-1",
            "name": { "familyName": "Jensen", "givenName": "Barbara" }, "title": "Tour Guide",
            "userType": "Employee", "active": true,
            "emails": [ { "value": "bjensen@example.com", "type": "work", "primary": true },
                        { "value": "babs@jensen.org", "type": "home" } ],
            ENTERPRISE: { "department": "Tour Operations", "employeeNumber": "701984" }
        }),
    )
    .await;
    let jsmith = create(
        app,
        json!({
            "schemas": [USER_SCHEMA], "userName": "JSmith", "externalId": "e-2",
            "name": { "familyName": "O'Malley", "givenName": "John" },
            "userType": "Intern", "active": false,
            "emails": [ { "value": "john@example.org", "type": "home" },
                        { "value": "jsmith@example.com", "type": "other" } ]
        }),
    )
    .await;
    let alice = create(
        app,
        json!({ "schemas": [USER_SCHEMA], "userName": "alice", "displayName": "Alice A", "active": true }),
    )
    .await;
    [bjensen, jsmith, alice]
}

/// The userNames of all users in the order `sortBy`/`sortOrder` give.
async fn sorted(app: &TestApp, sort_by: &str, order: &str) -> Vec<String> {
    let body: Value = json_body(
        app.request(Method::GET, "/scim/v2/Users")
            .query(&[("sortBy", sort_by), ("sortOrder", order)]),
    )
    .await;
    user_names(&body)
}

/// The userNames of a list answer's `Resources`, in its order.
fn user_names(body: &Value) -> Vec<String> {
    body["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .map(|u| u["userName"].as_str().expect("userName").to_string())
        .collect()
}

async fn filtered(app: &TestApp, filter: &str) -> Vec<String> {
    let response = app
        .request(Method::GET, "/scim/v2/Users")
        .query(&[("filter", filter), ("sortBy", "userName")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "filter {filter}");
    let body: Value = response.json().await.expect("json");
    let names = user_names(&body);
    assert_eq!(body["totalResults"], json!(names.len()), "totalResults for {filter}");
    names
}

#[tokio::test]
async fn every_operator_and_logical_form_selects_exactly_the_matching_users() {
    let app = spawn_app().await;
    let [bjensen, _, _] = seed(&app).await;
    let id = bjensen["id"].as_str().expect("id");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (r#"userName eq "bjensen""#.into(), vec!["bjensen"]),
        (r#"USERNAME EQ "BJENSEN""#.into(), vec!["bjensen"]),
        (r#"userName eq "jsmith""#.into(), vec!["JSmith"]),
        (r#"userName ne "bjensen""#.into(), vec!["alice", "JSmith"]),
        (r#"userName sw "j""#.into(), vec!["JSmith"]),
        (r#"userName ew "EN""#.into(), vec!["bjensen"]),
        (r#"userName co "li""#.into(), vec!["alice"]),
        (r#"userName gt "b""#.into(), vec!["bjensen", "JSmith"]),
        (r#"userName le "bjensen""#.into(), vec!["alice", "bjensen"]),
        (r#"externalId eq "E-1""#.into(), vec!["bjensen"]),
        (r#"externalId eq "e-1""#.into(), vec![] /* caseExact */),
        (format!(r#"id eq "{id}""#), vec!["bjensen"]),
        (r#"name.familyName co "O'Malley""#.into(), vec!["JSmith"]),
        (r#"title pr"#.into(), vec!["bjensen"]),
        (r#"not (title pr)"#.into(), vec!["alice", "JSmith"]),
        (r#"title pr and userType eq "Employee""#.into(), vec!["bjensen"]),
        (r#"title pr or userType eq "Intern""#.into(), vec!["bjensen", "JSmith"]),
        (r#"active eq true"#.into(), vec!["alice", "bjensen"]),
        (r#"active eq "False""#.into(), vec!["JSmith"]),
        (r#"emails.value eq "JOHN@example.org""#.into(), vec!["JSmith"]),
        (r#"emails co "example.com""#.into(), vec!["bjensen", "JSmith"]),
        (
            r#"emails[type eq "work" and value co "@example.com"]"#.into(),
            vec!["bjensen"],
        ),
        // Different elements: one is home, the other contains example.com.
        (r#"emails[type eq "home" and value co "example.com"]"#.into(), vec![]),
        (
            r#"emails.type eq "home" and emails.value co "example.com""#.into(),
            vec!["bjensen", "JSmith"],
        ),
        (
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#.into(),
            vec!["bjensen"],
        ),
        (
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#.into(),
            vec!["alice"],
        ),
        (r#"displayName eq "alice a""#.into(), vec!["alice"]),
        (
            format!(r#"{ENTERPRISE}:department eq "tour operations""#),
            vec!["bjensen"],
        ),
        (format!(r#"schemas eq "{ENTERPRISE}""#), vec!["bjensen"]),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "a""#.into(),
            vec!["alice"],
        ),
        (
            r#"meta.resourceType eq "User""#.into(),
            vec!["alice", "bjensen", "JSmith"],
        ),
        (
            r#"meta.created gt "2000-01-01T00:00:00Z""#.into(),
            vec!["alice", "bjensen", "JSmith"],
        ),
        (r#"meta.lastModified lt "2000-01-01T00:00:00Z""#.into(), vec![]),
        (r#"emails eq null"#.into(), vec!["alice"]),
    ];
    for (filter, expected) in cases {
        let mut got = filtered(&app, &filter).await;
        let mut expected: Vec<String> = expected.into_iter().map(str::to_string).collect();
        got.sort_by_key(|n| n.to_lowercase());
        expected.sort_by_key(|n| n.to_lowercase());
        assert_eq!(got, expected, "filter {filter}");
    }
}

#[tokio::test]
async fn invalid_filters_get_400_invalid_filter_never_an_empty_200() {
    let app = spawn_app().await;
    seed(&app).await;
    for filter in [
        r#"userName eqq "x""#,
        r#"nosuchattr eq "x""#,
        r#"userName eq"#,
        r#"userName eq "unterminated"#,
        r#"active gt true"#,
        r#"meta.created eq "not a date""#,
        r#"(userName eq "x""#,
        r#"userName eq "x" garbage"#,
        r#"emails[type eq "work""#,
    ] {
        let response = app
            .request(Method::GET, "/scim/v2/Users")
            .query(&[("filter", filter)])
            .send()
            .await
            .expect("request");
        assert_scim_error(response, 400, Some("invalidFilter")).await;
    }
}

#[tokio::test]
async fn group_filters_reach_display_name_and_members() {
    let app = spawn_app().await;
    let [bjensen, jsmith, _] = seed(&app).await;
    let bj = bjensen["id"].as_str().expect("id");
    let js = jsmith["id"].as_str().expect("id");
    let guides = app.create_group("Tour Guides", &[bj]).await;
    app.create_group("Interns", &[js]).await;
    let get = |filter: String| {
        let app = &app;
        async move {
            let response = app
                .request(Method::GET, "/scim/v2/Groups")
                .query(&[("filter", filter.as_str()), ("excludedAttributes", "members")])
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200, "{filter}");
            let body: Value = response.json().await.expect("json");
            body["Resources"]
                .as_array()
                .expect("array")
                .iter()
                .map(|g| g["displayName"].as_str().expect("name").to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(get(r#"displayName eq "tour guides""#.into()).await, ["Tour Guides"]);
    assert_eq!(get(format!(r#"members.value eq "{bj}""#)).await, ["Tour Guides"]);
    assert_eq!(get(format!(r#"members[value eq "{js}"]"#)).await, ["Interns"]);
    let listed: Value = json_body(app.request(Method::GET, "/scim/v2/Groups").query(&[
        ("filter", r#"displayName eq "Tour Guides""#),
        ("excludedAttributes", "members"),
    ]))
    .await;
    assert!(listed["Resources"][0].get("members").is_none());
    // A user's groups are filterable too.
    let gid = guides["id"].as_str().expect("id");
    assert_eq!(
        filtered(&app, &format!(r#"groups.value eq "{gid}""#)).await,
        ["bjensen"]
    );
}

/// A complex attribute sorts by its `value` sub-attribute, compared as that
/// sub-attribute is: `x509Certificates.value` is case-exact, so "QUJD" <
/// "QkNE" < "YWJj" in code-point order (case-insensitively "QkNE" would come
/// first). The users are created in another order.
#[tokio::test]
async fn a_complex_attribute_sorts_by_its_value_as_that_sub_attribute_compares() {
    let app = spawn_app().await;
    for (name, certificate) in [("c", "YWJj"), ("b", "QkNE"), ("a", "QUJD")] {
        create(
            &app,
            json!({ "schemas": [USER_SCHEMA], "userName": name, "x509Certificates": [{ "value": certificate }] }),
        )
        .await;
    }
    for (sort_by, order, expected) in [
        ("x509Certificates", "ascending", ["a", "b", "c"]),
        ("x509Certificates", "descending", ["c", "b", "a"]),
        ("x509Certificates.value", "ascending", ["a", "b", "c"]),
    ] {
        assert_eq!(sorted(&app, sort_by, order).await, expected, "sortBy={sort_by} {order}");
    }
}

#[tokio::test]
async fn sort_by_any_attribute_ascending_and_descending_with_missing_values_last() {
    let app = spawn_app().await;
    seed(&app).await;
    let order = |sort_by: &'static str, order: &'static str| sorted(&app, sort_by, order);
    assert_eq!(order("userName", "ascending").await, ["alice", "bjensen", "JSmith"]);
    assert_eq!(order("userName", "descending").await, ["JSmith", "bjensen", "alice"]);
    assert_eq!(
        order("name.familyName", "ascending").await,
        ["bjensen", "JSmith", "alice"]
    );
    assert_eq!(
        order("name.familyName", "descending").await,
        ["JSmith", "bjensen", "alice"]
    );
    // Multi-valued: the primary (else first) email.
    assert_eq!(order("emails", "ascending").await, ["bjensen", "JSmith", "alice"]);
    assert_eq!(
        order("emails.value", "descending").await,
        ["JSmith", "bjensen", "alice"]
    );
    let bad = app
        .request(Method::GET, "/scim/v2/Users")
        .query(&[("sortBy", "userName"), ("sortOrder", "sideways")])
        .send()
        .await
        .expect("request");
    assert_scim_error(bad, 400, Some("invalidValue")).await;
}

/// `pr` holds for a non-empty value only (RFC 7644 §3.4.2.2), whichever
/// column the attribute's values are kept in: case-insensitive strings
/// (`title`), case-exact ones (`x509Certificates.value`), booleans.
#[tokio::test]
async fn presence_means_a_non_empty_value_of_any_type() {
    let app = spawn_app().await;
    for (name, title, certificate) in [("empty", "", ""), ("set", "Guide", "MIIC"), ("absent", "", "")] {
        let mut user = json!({ "schemas": [USER_SCHEMA], "userName": name });
        if name != "absent" {
            user["title"] = json!(title);
            user["x509Certificates"] = json!([{ "value": certificate }]);
            user["emails"] = json!([{ "value": format!("{name}@example.com"), "primary": name == "set" }]);
        }
        create(&app, user).await;
    }
    assert_eq!(filtered(&app, "title pr").await, ["set"]);
    assert_eq!(filtered(&app, "x509Certificates pr").await, ["set"]);
    assert_eq!(filtered(&app, "x509Certificates.value pr").await, ["set"]);
    assert_eq!(filtered(&app, "emails.primary pr").await, ["empty", "set"]);
    assert_eq!(filtered(&app, r#"x509Certificates.value eq "MIIC""#).await, ["set"]);
    assert_eq!(
        filtered(&app, r#"x509Certificates.value eq "miic""#).await,
        Vec::<String>::new()
    );
    assert_eq!(filtered(&app, "emails[primary eq false]").await, ["empty"]);
    assert_eq!(filtered(&app, r#"title eq "GUIDE""#).await, ["set"]);
}

#[tokio::test]
async fn pages_of_a_sorted_filtered_list_neither_overlap_nor_skip() {
    let app = spawn_app().await;
    for i in 0..23 {
        // Duplicate sort keys force the tie-break.
        create(
            &app,
            json!({ "schemas": [USER_SCHEMA], "userName": format!("user{i:02}"), "title": format!("t{}", i % 3) }),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let body: Value = json_body(app.request(Method::GET, "/scim/v2/Users").query(&[
            ("filter", "title pr"),
            ("sortBy", "title"),
            ("startIndex", &start.to_string()),
            ("count", "5"),
        ]))
        .await;
        assert_eq!(body["totalResults"], 23);
        let page = body["Resources"].as_array().expect("array").clone();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|u| u["userName"].as_str().expect("n").to_string()));
        start += 5;
    }
    assert_eq!(seen.len(), 23);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 23, "no overlap");
}

#[tokio::test]
async fn search_endpoints_take_a_search_request_with_the_same_semantics() {
    let app = spawn_app().await;
    let [bjensen, _, _] = seed(&app).await;
    app.create_group("Tour Guides", &[bjensen["id"].as_str().expect("id")])
        .await;
    let request = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "attributes": ["userName", "displayName"],
        "filter": "userName sw \"b\" or displayName eq \"Tour Guides\"",
        "startIndex": 1,
        "count": 10
    });
    let users: Value = app
        .post("/scim/v2/Users/.search", &request)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(users["totalResults"], 1);
    assert_eq!(users["Resources"][0]["userName"], "bjensen");
    assert!(
        users["Resources"][0].get("emails").is_none(),
        "attributes projection applies"
    );
    // Root search spans both types; alice has a displayName, and so does the group.
    let across = json!({ "filter": "displayName pr", "attributes": ["displayName"] });
    let all = app.post("/scim/v2/.search", &across).await;
    assert_eq!(all.status(), 200);
    let all: Value = all.json().await.expect("json");
    assert_eq!(all["totalResults"], 2, "one user and one group: {all}");
    let names: Vec<&str> = all["Resources"]
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["displayName"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["Alice A", "Tour Guides"]);
    // userName exists only on Users: a group has none, and matches by its displayName.
    let both: Value = app.post("/scim/v2/.search", &request).await.json().await.expect("json");
    assert_eq!(both["totalResults"], 2, "{both}");
    assert_eq!(both["Resources"][0]["userName"], "bjensen");
    assert_eq!(both["Resources"][1]["displayName"], "Tour Guides");
    let bad = app
        .post("/scim/v2/Users/.search", &json!({ "filter": "userName zz 1" }))
        .await;
    assert_scim_error(bad, 400, Some("invalidFilter")).await;
    assert_eq!(app.get("/scim/v2/Users/.search").await.status(), 405);
}

/// Root `/.search`: the ids a search request finds, in order; panics unless 200.
async fn root_search_ids(app: &TestApp, request: Value) -> Vec<String> {
    let response = app.post("/scim/v2/.search", &request).await;
    assert_eq!(response.status(), 200, "{request}");
    let list: Value = response.json().await.expect("json");
    let ids: Vec<String> = list["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(list["totalResults"], ids.len(), "one page holds them all: {list}");
    ids
}

#[tokio::test]
async fn root_search_treats_an_attribute_one_type_lacks_as_unassigned_in_that_type() {
    let app = spawn_app().await;
    let [bjensen, jsmith, alice] = seed(&app).await;
    let [bjensen, jsmith, alice] = [&bjensen, &jsmith, &alice].map(|u| u["id"].as_str().expect("id").to_string());
    let guides = app.create_group("Tour Guides", &[&bjensen]).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let empty = app.create_group("Empty", &[]).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // A group has no userName: `not` of a test on it holds, as on any absent attribute.
    assert_eq!(
        root_search_ids(&app, json!({ "filter": "not (userName eq \"alice\")" })).await,
        [bjensen.clone(), jsmith.clone(), guides.clone(), empty.clone()]
    );
    // A user has no members; a group has no emails.
    assert_eq!(
        root_search_ids(&app, json!({ "filter": "members pr or emails[type eq \"home\"]" })).await,
        [bjensen.clone(), jsmith.clone(), guides.clone()]
    );
    assert_eq!(
        root_search_ids(&app, json!({ "filter": "members pr and userName pr" })).await,
        Vec::<String>::new()
    );
    // Sorted by an attribute groups lack: the groups follow the sorted users, either way.
    assert_eq!(
        root_search_ids(&app, json!({ "sortBy": "userName", "sortOrder": "descending" })).await,
        [
            jsmith.clone(),
            bjensen.clone(),
            alice.clone(),
            guides.clone(),
            empty.clone()
        ]
    );
    assert_eq!(
        root_search_ids(&app, json!({ "sortBy": "userName" })).await,
        [
            alice.clone(),
            bjensen.clone(),
            jsmith.clone(),
            guides.clone(),
            empty.clone()
        ]
    );
    // An attribute no type defines is still a bad filter, and a bad sortBy a bad sort.
    let unknown = app
        .post(
            "/scim/v2/.search",
            &json!({ "filter": "members pr or nickname2 eq \"x\"" }),
        )
        .await;
    let body = assert_scim_error(unknown, 400, Some("invalidFilter")).await;
    assert!(body["detail"].as_str().expect("detail").contains("nickname2"), "{body}");
    let unsortable = app.post("/scim/v2/.search", &json!({ "sortBy": "nickname2" })).await;
    assert_scim_error(unsortable, 400, Some("invalidValue")).await;
}

#[tokio::test]
async fn root_search_needs_both_read_scopes() {
    let app = spawn_app().await;
    let users_only = app.key_with_scopes(&[scimd::auth::Scope::UsersRead]).await;
    let response = app
        .request_with(&users_only, Method::POST, "/scim/v2/.search")
        .json(&json!({ "filter": "userName pr" }))
        .send()
        .await
        .expect("request");
    let body = assert_scim_error(response, 403, None).await;
    assert!(body["detail"].as_str().expect("detail").contains("scim:groups:read"));
}

#[tokio::test]
async fn count_above_the_maximum_is_clamped_and_negative_count_is_zero() {
    let app = spawn_app().await;
    seed(&app).await;
    let big: Value = app.get("/scim/v2/Users?count=100000").await.json().await.expect("json");
    assert_eq!(big["itemsPerPage"], 3);
    let negative: Value = app.get("/scim/v2/Users?count=-5").await.json().await.expect("json");
    assert_eq!(negative["totalResults"], 3);
    assert_eq!(negative["Resources"], json!([]));
}

/// `GET /Users` with `params` (a page by cursor or by index); panics unless 200.
async fn users_page(app: &TestApp, params: &[(&str, &str)]) -> Value {
    let response = app
        .request(Method::GET, "/scim/v2/Users")
        .query(params)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "{params:?}");
    response.json().await.expect("json")
}

fn names_of(page: &Value) -> Vec<String> {
    page["Resources"]
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["userName"].as_str().expect("n").to_string())
        .collect()
}

/// `count` userNames from `startIndex` (1-based), by index paging.
async fn index_page(app: &TestApp, start_index: usize, count: usize) -> Vec<String> {
    let (start, count) = (start_index.to_string(), count.to_string());
    let params = [
        ("startIndex", start.as_str()),
        ("count", count.as_str()),
        ("attributes", "userName"),
    ];
    names_of(&users_page(app, &params).await)
}

/// Every slice the pages below ask for, checked against the whole list read
/// in one page from the start (which no earlier page's end can shorten).
async fn assert_index_pages_match_the_list(app: &TestApp) {
    let list = index_page(app, 1, 1000).await;
    let mut passed = Vec::new();
    let mut start = 1;
    while start <= list.len() {
        passed.extend(index_page(app, start, 7).await);
        start += 7;
    }
    assert_eq!(passed, list, "a pass by startIndex, 7 at a time");
    for start in [3, 10, 50, 9, 22, 29, 8, list.len() - 1, list.len(), list.len() + 1] {
        let expected: Vec<String> = list.iter().skip(start - 1).take(5).cloned().collect();
        assert_eq!(index_page(app, start, 5).await, expected, "startIndex {start}");
    }
}

/// Pages by index start from where earlier pages ended (`store::page_marks`);
/// those places hold only while the list is unchanged, on any instance.
#[tokio::test]
async fn pages_by_index_that_start_where_earlier_pages_ended_match_the_list_as_it_changes() {
    use scimd::scim::ResourceKind::User;
    use scimd::store::query::{ListSpec, Page};
    use scimd::store::resources::Load;
    let app = spawn_app().await;
    for i in 0..60 {
        app.create_user(&format!("user{i:03}")).await;
    }
    assert_index_pages_match_the_list(&app).await;
    // The list changes before and after the places pages ended.
    let list = index_page(&app, 1, 1000).await;
    for gone in [&list[3], &list[40]] {
        let found: Value = app
            .get(&format!("/scim/v2/Users?filter=userName%20eq%20%22{gone}%22"))
            .await
            .json()
            .await
            .expect("json");
        let id = found["Resources"][0]["id"].as_str().expect("id");
        assert_eq!(app.delete(&format!("/scim/v2/Users/{id}")).await.status(), 204);
    }
    app.create_user("late").await;
    assert_index_pages_match_the_list(&app).await;
    // Another instance on the same database changes the list: this one's
    // places, left by the pages just read, no longer hold.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut other = crate::helpers::spawn_with(dir, app.data_dir.join("other"), &app).await;
    other.admin_key = app.admin_key.clone();
    let before = index_page(&app, 30, 5).await;
    other.create_user("aaa-first").await;
    let found: Value = other
        .get("/scim/v2/Users?filter=userName%20eq%20%22user000%22")
        .await
        .json()
        .await
        .expect("json");
    let first_id = found["Resources"][0]["id"].as_str().expect("id");
    assert_eq!(other.delete(&format!("/scim/v2/Users/{first_id}")).await.status(), 204);
    let after = index_page(&app, 30, 5).await;
    assert_eq!(
        after[..4],
        before[1..],
        "one created at the end, one deleted before: a shift of one"
    );
    assert_index_pages_match_the_list(&app).await;

    // The places are kept, and a page that starts from one is exact.
    let store = app.store().await;
    let tenant = store.tenant_by_name("default").await.expect("query").expect("tenant");
    let page = |offset| ListSpec {
        filter: None,
        sort: None,
        page: Page::Offset(offset),
        limit: 5,
    };
    let load = Load {
        members: false,
        groups: false,
    };
    let names = |found: scimd::store::query::QueryPage| -> Vec<String> {
        found
            .resources
            .iter()
            .map(|r| r.document.attribute("userName").expect("stored").expect("userName"))
            .map(|name| name.as_str().expect("text").to_string())
            .collect()
    };
    let marks = store.page_marks().expect("marks outside a batch");
    assert!(marks.offsets(&tenant.id, User).is_empty());
    store
        .query_resources(&tenant.id, User, &page(20), load)
        .await
        .expect("page");
    assert_eq!(marks.offsets(&tenant.id, User), [25]);
    let from_mark = store
        .query_resources(&tenant.id, User, &page(27), load)
        .await
        .expect("page");
    let list = index_page(&app, 1, 1000).await;
    assert_eq!(names(from_mark), list[27..32]);
    assert_eq!(marks.offsets(&tenant.id, User), [25, 32]);
}

#[tokio::test]
async fn cursor_paging_stays_exact_while_users_are_created_and_deleted_between_pages() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            create(
                &app,
                json!({ "schemas": [USER_SCHEMA], "userName": format!("u{i:02}") }),
            )
            .await["id"]
                .clone(),
        );
    }
    let first = users_page(&app, &[("cursor", ""), ("count", "5")]).await;
    assert!(first.get("startIndex").is_none(), "no startIndex in cursor paging");
    assert_eq!(first["totalResults"], 12);
    let mut seen = names_of(&first);
    assert_eq!(seen, ["u00", "u01", "u02", "u03", "u04"]);
    // Between pages: delete a user already seen and one not yet seen, add one.
    for id in [&ids[1], &ids[7]] {
        assert_eq!(
            app.delete(&format!("/scim/v2/Users/{}", id.as_str().expect("id")))
                .await
                .status(),
            204
        );
    }
    create(&app, json!({ "schemas": [USER_SCHEMA], "userName": "late" })).await;
    let mut cursor = first["nextCursor"].as_str().expect("nextCursor").to_string();
    loop {
        let page = users_page(&app, &[("cursor", cursor.as_str()), ("count", "5")]).await;
        seen.extend(names_of(&page));
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    // Nothing skipped, nothing repeated; u07 was deleted before its page; the late user comes last.
    assert_eq!(
        seen,
        [
            "u00", "u01", "u02", "u03", "u04", "u05", "u06", "u08", "u09", "u10", "u11", "late"
        ]
    );
}

#[tokio::test]
async fn cursor_paging_follows_sort_and_filter_to_the_last_page() {
    let app = spawn_app().await;
    for (i, title) in ["b", "a", "c", "a", "", "b", "c", "a"].iter().enumerate() {
        let mut user = json!({ "schemas": [USER_SCHEMA], "userName": format!("p{i}") });
        if !title.is_empty() {
            user["title"] = json!(title);
        }
        create(&app, user).await;
    }
    let all: Value = json_body(app.request(Method::GET, "/scim/v2/Users").query(&[
        ("sortBy", "title"),
        ("sortOrder", "descending"),
        ("filter", "userName sw \"p\""),
        ("count", "100"),
    ]))
    .await;
    let expected = names_of(&all);
    assert_eq!(expected.last().map(String::as_str), Some("p4"), "no title sorts last");
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = users_page(
            &app,
            &[
                ("sortBy", "title"),
                ("sortOrder", "descending"),
                ("filter", "userName sw \"p\""),
                ("cursor", &cursor),
                ("count", "3"),
            ],
        )
        .await;
        assert_eq!(page["totalResults"], 8);
        walked.extend(names_of(&page));
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(walked, expected);
}

#[tokio::test]
async fn a_cursor_that_is_garbage_or_from_another_query_gets_400_invalid_cursor() {
    let app = spawn_app().await;
    for i in 0..4 {
        create(&app, json!({ "schemas": [USER_SCHEMA], "userName": format!("c{i}") })).await;
    }
    let first = users_page(&app, &[("cursor", ""), ("count", "2"), ("filter", "userName sw \"c\"")]).await;
    let next = first["nextCursor"].as_str().expect("nextCursor");
    for params in [
        vec![("cursor", "zz-not-a-cursor"), ("count", "2")],
        vec![("cursor", next), ("count", "2"), ("filter", "userName sw \"d\"")],
        vec![("cursor", next), ("count", "2")],
    ] {
        let response = app
            .request(Method::GET, "/scim/v2/Users")
            .query(&params)
            .send()
            .await
            .expect("request");
        assert_scim_error(response, 400, Some("invalidCursor")).await;
    }
    let spc: Value = app
        .get("/scim/v2/ServiceProviderConfig")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(spc["pagination"]["cursor"], true);
    assert_eq!(spc["pagination"]["index"], true);
}

/// The lookups IdPs make before every change must be index lookups on both
/// backends, never a scan of the tenant's resources.
#[tokio::test]
async fn common_lookups_are_planned_on_indexes() {
    use scimd::scim::ResourceKind::{Group, User};
    use scimd::scim::filter::parse_filter;
    use scimd::scim::schema::SchemaRegistry;
    use scimd::store::query::{Page, Position};
    let app = spawn_app().await;
    let [bjensen, jsmith, alice] = seed(&app).await;
    for (i, member) in [&bjensen, &jsmith, &alice].iter().enumerate() {
        app.create_group(&format!("group {i}"), &[member["id"].as_str().expect("id")])
            .await;
    }
    app.create_group("Tour Guides", &[]).await;
    let store = app.store().await;
    let tenant = store.tenant_by_name("default").await.expect("query").expect("tenant");
    // Statistics, as any database in use has them; without them PostgreSQL
    // cannot tell the indexes that share a prefix apart.
    if store.backend() == sea_orm::DbBackend::Postgres {
        sea_orm::ConnectionTrait::execute_unprepared(
            store.writer(),
            "ANALYZE scim_resources, scim_values, group_members",
        )
        .await
        .expect("analyze");
    }
    let cases = [
        (User, r#"userName eq "bjensen""#, "ux_scim_resources_user_name"),
        (User, r#"externalId eq "E-1""#, "ix_scim_resources_external_id"),
        (User, r#"displayName eq "Alice A""#, "ix_scim_resources_display_name"),
        (
            Group,
            r#"displayName eq "Tour Guides""#,
            "ix_scim_resources_display_name",
        ),
        (
            User,
            r#"emails.value eq "bjensen@example.com""#,
            "ix_scim_values_folded",
        ),
        (
            User,
            r#"meta.lastModified lt "2001-01-01T00:00:00Z""#,
            "ix_scim_resources_last_modified",
        ),
        (
            User,
            r#"meta.lastModified gt "2101-01-01T00:00:00Z""#,
            "ix_scim_resources_last_modified",
        ),
        (User, r#"name.familyName eq "Jensen""#, "ix_scim_values_folded"),
        (User, r#"emails.value co "jensen""#, "ix_scim_values_folded"),
        // Booleans are held as text; that index has only rows with text.
        (User, "active eq false", "ix_scim_values_text"),
        (
            Group,
            r#"members.value eq "2819c223-7f76-453a-919d-413861904646""#,
            "ix_group_members_member",
        ),
        (
            User,
            r#"groups.value eq "2819c223-7f76-453a-919d-413861904646""#,
            "group_members",
        ),
    ];
    for (kind, filter, index) in cases {
        let parsed = parse_filter(SchemaRegistry::builtin(), kind, filter).expect("valid filter");
        let plan = store
            .explain_filter(&tenant.id, kind, &parsed)
            .await
            .expect("explain")
            .join("\n");
        println!("{filter}:\n{plan}\n");
        assert!(plan.contains(index), "{filter} should use {index}:\n{plan}");
        let scans = plan.lines().any(|l| {
            (l.contains("SCAN") && !l.contains("USING") && !l.contains("SCAN below"))
                // An index searched by tenant alone is a pass over the
                // tenant; by tenant and type alone (the list order's index),
                // over its Users or Groups.
                || l.contains("(tenant_id=?)")
                || l.contains("(tenant_id=? AND resource_type=?)")
                || l.contains("Seq Scan on scim_resources")
                || l.contains("Seq Scan on group_members")
                // PostgreSQL: an id compared under another collation than
                // its index's is a filter on a pass over the index.
                || (l.contains("Filter:") && (l.contains("group_id") || l.contains("member_id")))
        });
        assert!(!scans, "{filter} reads a table by scan:\n{plan}");
    }

    // A page deep into the list: the order is the index's own (no sort in a
    // temporary b-tree), so skipped rows cost an index step each.
    let plan = store
        .explain_page(&tenant.id, User, &Page::Offset(5000), 100)
        .await
        .expect("explain")
        .join("\n");
    println!("a page at offset 5000:\n{plan}\n");
    assert!(plan.contains("ix_scim_resources_created_at_id"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE") && !plan.contains("Sort"), "{plan}");

    // A page by cursor starts its index search at the position, rather
    // than stepping over every row before it.
    let position = Position {
        key: None,
        created: "2026-11-23T10:00:00.000000Z".into(),
        id: "2819c223-7f76-453a-919d-413861904646".into(),
    };
    let plan = store
        .explain_page(&tenant.id, User, &Page::After(Some(position)), 100)
        .await
        .expect("explain")
        .join("\n");
    println!("a page after a cursor position:\n{plan}\n");
    assert!(plan.contains("ix_scim_resources_created_at_id"), "{plan}");
    let searched_from_position = plan.contains("created_at>?")
        || plan
            .lines()
            .any(|l| l.contains("Index Cond") && l.contains("created_at >="));
    assert!(searched_from_position, "{plan}");
    assert!(!plan.contains("TEMP B-TREE") && !plan.contains("Sort"), "{plan}");

    // A user's derived `groups`, alone (pages) and with the user's row
    // (GET /Users/{id}): every step of the recursion is an index lookup,
    // never a pass over the tenant's memberships or resources.
    let user_id = "2819c223-7f76-453a-919d-413861904646";
    let plans = [
        ("groups of a user", store.explain_groups_of(&tenant.id, user_id).await),
        (
            "a user with its groups",
            store.explain_user_with_groups(&tenant.id, user_id).await,
        ),
        (
            "a user and whether it is in a group",
            store.explain_user_in_groups(&tenant.id, user_id).await,
        ),
    ];
    for (what, plan) in plans {
        let plan = plan.expect("explain").join("\n");
        println!("{what}:\n{plan}\n");
        assert!(plan.contains("ix_group_members_member"), "{what}: {plan}");
        let scans = plan.lines().any(|l| {
            l.contains("Seq Scan on group_members")
                || l.contains("Seq Scan on scim_resources")
                || (l.contains("group_members") && l.contains("USING INDEX") && !l.contains("member_id=?"))
                || (l.contains("SCAN")
                    && !l.contains("USING")
                    && !l.contains("SCAN anc")
                    && !l.contains("SCAN derived"))
        });
        assert!(!scans, "{what}: a step reads by scan:\n{plan}");
    }
}

#[tokio::test]
async fn groups_filters_follow_nested_groups_and_end_on_cycles() {
    let app = spawn_app().await;
    let inner_member = app.create_user("inner-member").await;
    let outer_member = app.create_user("outer-member").await;
    app.create_user("loner").await;
    let uid = |u: &Value| u["id"].as_str().expect("id").to_string();
    let inner = app.create_group("Inner", &[&uid(&inner_member)]).await;
    let outer = app.create_group("Outer", &[&uid(&outer_member), &uid(&inner)]).await;
    // A cycle: Inner also contains Outer. The walk down must still end.
    let cycle = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Inner",
        "members": [{ "value": uid(&inner_member) }, { "value": uid(&outer) }],
    });
    let response = app.put(&format!("/scim/v2/Groups/{}", uid(&inner)), &cycle).await;
    assert_eq!(response.status(), 200);

    let both = vec!["inner-member", "outer-member"];
    assert_eq!(
        filtered(&app, &format!(r#"groups.value eq "{}""#, uid(&outer))).await,
        both
    );
    assert_eq!(filtered(&app, &format!(r#"groups eq "{}""#, uid(&inner))).await, both);
    assert_eq!(filtered(&app, r#"groups.display eq "OUTER""#).await, both);
    assert_eq!(filtered(&app, r#"groups.display sw "inn""#).await, both);
    assert_eq!(filtered(&app, "groups pr").await, both);
    assert_eq!(filtered(&app, "not (groups pr)").await, ["loner"]);
    assert_eq!(
        filtered(&app, &format!(r#"not (groups.value eq "{}")"#, uid(&outer))).await,
        ["loner"]
    );
    assert_eq!(
        filtered(
            &app,
            &format!(r#"groups.value eq "{}" and userName sw "outer""#, uid(&inner))
        )
        .await,
        ["outer-member"]
    );
    assert!(filtered(&app, r#"groups.value eq "no-such-group""#).await.is_empty());
}

/// PostgreSQL without autovacuum (or before it catches up) has no statistics
/// after a first sync, and then planned `userName eq` as a pass over every
/// user. scimd analyses its tables when they have changed that much.
#[tokio::test]
async fn postgresql_gets_planner_statistics_after_a_large_load_without_autovacuum() {
    use scimd::scim::ResourceKind::User;
    use scimd::scim::filter::parse_filter;
    use scimd::scim::schema::SchemaRegistry;
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let app = spawn_app().await;
    let store = app.store().await;
    if store.backend() != DbBackend::Postgres {
        assert!(store.refresh_statistics().await.expect("refresh").is_empty());
        return;
    }
    for batch in 0..4 {
        let operations: Vec<Value> = (0..200)
            .map(|i| {
                json!({
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": format!("u{i}"),
                    "data": { "schemas": [USER_SCHEMA], "userName": format!("load-{batch}-{i}") },
                })
            })
            .collect();
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": operations,
        });
        let response = app.post("/scim/v2/Bulk", &body).await;
        assert_eq!(response.status(), 200);
    }
    let analysed = || async {
        let row = store
            .writer()
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT last_analyze IS NOT NULL AS done FROM pg_stat_user_tables WHERE relname = 'scim_resources'",
            ))
            .await
            .expect("query")
            .expect("row");
        row.try_get::<bool>("", "done").expect("done")
    };
    // Activity counters reach pg_stat_user_tables up to ~10 s late.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while !analysed().await {
        assert!(
            std::time::Instant::now() < deadline,
            "scim_resources was never analysed"
        );
        store.refresh_statistics().await.expect("refresh");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let tenant = store.tenant_by_name("default").await.expect("query").expect("tenant");
    let filter = parse_filter(SchemaRegistry::builtin(), User, r#"userName eq "load-3-7""#).expect("filter");
    let plan = store
        .explain_filter(&tenant.id, User, &filter)
        .await
        .expect("explain")
        .join("\n");
    assert!(plan.contains("ux_scim_resources_user_name"), "{plan}");
}

/// An unfiltered list's totalResults (on SQLite a count kept by triggers)
/// follows every way resources come and go, per tenant and per type.
#[tokio::test]
async fn an_unfiltered_total_follows_creates_deletes_bulk_and_refusals_per_tenant_and_type() {
    let app = spawn_app().await;
    let total = |path: &'static str, key: String| {
        let app = &app;
        async move {
            let list: Value = json_body(app.request_with(&key, Method::GET, path)).await;
            list["totalResults"].as_u64().expect("totalResults")
        }
    };
    let admin = app.admin_key.clone();
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(app.create_user(&format!("counted{i}")).await);
    }
    app.create_group("counted-group", &[users[0]["id"].as_str().expect("id")])
        .await;
    let other: Value = app
        .post("/admin/v1/tenants", &json!({ "name": "counted-elsewhere" }))
        .await
        .json()
        .await
        .expect("json");
    let other_key = other["key"].as_str().expect("key").to_string();
    let created = app
        .request_with(&other_key, Method::POST, "/t/counted-elsewhere/scim/v2/Users")
        .json(&json!({ "schemas": [USER_SCHEMA], "userName": "counted0" }))
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 201);
    assert_eq!(total("/scim/v2/Users", admin.clone()).await, 5);
    assert_eq!(total("/scim/v2/Groups", admin.clone()).await, 1);
    assert_eq!(total("/t/counted-elsewhere/scim/v2/Users", other_key.clone()).await, 1);

    // A refused create and a Bulk with one refused operation of three.
    let duplicate = app
        .post(
            "/scim/v2/Users",
            &json!({ "schemas": [USER_SCHEMA], "userName": "COUNTED1" }),
        )
        .await;
    assert_eq!(duplicate.status(), 409);
    let operations: Vec<Value> = ["bulk-a", "bulk-b", "counted2"]
        .iter()
        .map(|name| {
            json!({
                "method": "POST", "path": "/Users", "bulkId": name,
                "data": { "schemas": [USER_SCHEMA], "userName": name },
            })
        })
        .collect();
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": operations,
    });
    assert_eq!(app.post("/scim/v2/Bulk", &bulk).await.status(), 200);
    assert_eq!(total("/scim/v2/Users", admin.clone()).await, 7);

    // Deletes: a user, and a group (its member stays).
    let id = users[3]["id"].as_str().expect("id");
    assert_eq!(app.delete(&format!("/scim/v2/Users/{id}")).await.status(), 204);
    let groups: Value = app.get("/scim/v2/Groups").await.json().await.expect("json");
    let group_id = groups["Resources"][0]["id"].as_str().expect("id");
    assert_eq!(app.delete(&format!("/scim/v2/Groups/{group_id}")).await.status(), 204);
    assert_eq!(total("/scim/v2/Users", admin.clone()).await, 6);
    assert_eq!(total("/scim/v2/Groups", admin.clone()).await, 0);
    assert_eq!(total("/t/counted-elsewhere/scim/v2/Users", other_key).await, 1);
    // A page past the end still carries the total.
    assert_eq!(total("/scim/v2/Users?startIndex=50&count=2", admin).await, 6);
}

/// The unfiltered total (a trigger-kept count) against a filtered one (a
/// `COUNT(*)` of the rows) after creates and deletes racing on many
/// connections: on PostgreSQL the count is kept in shards that concurrent
/// sessions add to, and none of their changes may be lost.
#[tokio::test]
async fn the_kept_count_matches_the_rows_after_concurrent_creates_and_deletes() {
    let app = spawn_app().await;
    let app = &app;
    let create = |i: usize| async move { app.create_user(&format!("racer{i}")).await };
    let created = futures_util::future::join_all((0..48).map(create)).await;
    let deletes = created.iter().take(20).map(|user| async move {
        let id = user["id"].as_str().expect("id");
        app.delete(&format!("/scim/v2/Users/{id}")).await.status()
    });
    let more_creates = (48..60).map(create);
    let (deleted, _) = tokio::join!(
        futures_util::future::join_all(deletes),
        futures_util::future::join_all(more_creates)
    );
    assert!(deleted.iter().all(|status| *status == 204), "{deleted:?}");

    assert_eq!(app.total("/scim/v2/Users?count=1").await, 40);
    assert_eq!(app.total("/scim/v2/Users?count=1&filter=userName%20pr").await, 40);
}

/// A database that already holds resources when the count is introduced
/// (migration 7 on PostgreSQL) starts from their number: the migration
/// counts the rows present, and creates after it add to that.
#[tokio::test]
async fn upgrading_a_database_counts_the_resources_it_already_holds() {
    use scimd_migrations::{Migrator, MigratorTrait};

    let app = spawn_app().await;
    let db = sea_orm::Database::connect(app.database_url.as_str())
        .await
        .expect("connect");
    // Back to before the count (on SQLite migration 7 changes nothing and
    // its triggers from migration 6 keep counting), then resources written
    // without it, then the upgrade. Counted from the list, so migrations
    // added later are undone too rather than instead of it.
    let migrations = Migrator::migrations();
    let count_migration = migrations
        .iter()
        .position(|m| m.name() == "m20261206_000007_postgres_resource_counts")
        .expect("migration 7");
    let later = u32::try_from(migrations.len() - count_migration).expect("few");
    Migrator::down(&db, Some(later))
        .await
        .expect("down to before the count");
    for i in 0..3 {
        app.create_user(&format!("before-count{i}")).await;
    }
    app.create_group("before-count", &[]).await;
    Migrator::up(&db, None).await.expect("up");

    assert_eq!(app.total("/scim/v2/Users?count=1").await, 3);
    assert_eq!(app.total("/scim/v2/Groups?count=1").await, 1);
    app.create_user("after-count").await;
    assert_eq!(app.total("/scim/v2/Users?count=1").await, 4);
}
