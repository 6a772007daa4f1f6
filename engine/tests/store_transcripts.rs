//! Replays the recorded keys-API transcripts of etcd 3.4.23 (the `G<n>` numbers, listed in
//! engine/src/store/README.md §Transcripts) against `engine::store` at the typed level: the same
//! parameters go through `command_from_params`, the command is applied, and the status,
//! `X-Etcd-Index` and body are compared with what etcd 3.4.23 answered.
//!
//! Normalisation (as in engine/src/store/README.md §12.5): each session starts the store at the
//! transcript's first `X-Etcd-Index` (3.4 starts at 3 because of its hidden cluster entries; the
//! second recorded node was at 263 after the client tests), so every later index must match
//! exactly. `expiration`
//! strings are replaced by a placeholder (etcd's clock, nanoseconds and `Z`; ours is ms), after
//! checking that the expiry equals `now + ttl`. `ttl` is compared as rendered: the session clock
//! advances a few ms per request, as on the real node, so the rounded-up values must agree.
//!
//! The transcripts depend on each other (indexes, keys), so they run as the two continuous
//! sessions they were recorded in (first node: G2–G53, G101–G123, G131–G132; second node:
//! G141–G162, G191–G193). Writes the transcripts imply but do not show are replayed with a
//! comment (index 33, the 1100 bulk writes, indexes 279–282, the TTL keys of G119/G191/G192).
//!
//! Covered: G2–G5, G7–G49, G52, G53, G62 (store half), G101–G152, G155–G159, G162, G191–G193.
//! Skipped, HTTP-only (the HTTP issue): G6 HEAD, G50 405, G51/G153 301 path cleaning, G160
//! OPTIONS, G161 404 route; G154 (truncated body, state from client tests, random order);
//! G1, G54–G61, G63, G171–G189, G194 (other endpoints, clusters, stats). Parts that are HTTP
//! concerns are replayed with the parameters the HTTP layer will hand over: G105 body-before-
//! query order, G106 DELETE body dropped, G151/G152 percent-decoded keys, G162 JSON body unparsed.

use engine::store::{
    Command, Event, ExpirationStyle, Store, StoreError, WriteMethod, command::bool_param,
    command_from_params, render_error, render_with, success_status,
};

/// 2026-11-23T19:03:51Z, about when the first recorded session ran.
const T0_MS: u64 = 1_795_460_631_000;

struct Session {
    store: Store,
    now_ms: u64,
}

fn pairs(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Replaces every `"expiration":"…"` value with a placeholder.
fn normalise(body: &str) -> String {
    let marker = "\"expiration\":\"";
    let mut out = String::new();
    let mut rest = body;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        out.push_str("<T>");
        let after = &rest[at + marker.len()..];
        let end = after.find('"').expect("expiration string is closed");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

impl Session {
    fn new(start_index: u64, now_ms: u64) -> Session {
        Session {
            store: Store::with_config(start_index, engine::store::WATCH_HISTORY_MAX),
            now_ms,
        }
    }

    /// Lets a little time pass between requests, as on the real node.
    fn tick(&mut self) {
        self.now_ms += 7;
    }

    fn body(&self, event: &Event, no_value: bool) -> String {
        render_with(event, self.now_ms, no_value, ExpirationStyle::Zulu)
    }

    fn check_error(&self, id: &str, err: &StoreError, status: u16, index: u64, expected: &str) {
        assert_eq!(err.code.http_status(), status, "{id}: status");
        assert_eq!(err.index, index, "{id}: X-Etcd-Index");
        assert_eq!(render_error(err), format!("{expected}\n"), "{id}: body");
    }

    fn check_event(&self, id: &str, event: &Event, no_value: bool, index: u64, expected: &str) {
        assert_eq!(event.index, index, "{id}: X-Etcd-Index");
        assert_eq!(self.store.index(), index, "{id}: store index");
        let body = self.body(event, no_value);
        assert_eq!(
            normalise(&body),
            normalise(&format!("{expected}\n")),
            "{id}: body"
        );
    }

    /// One write request: build, apply, compare status/index/body.
    fn write(
        &mut self,
        id: &str,
        method: WriteMethod,
        key: &str,
        params: &[(&str, &str)],
        (status, index, expected): (u16, u64, &str),
    ) {
        self.tick();
        let params = pairs(params);
        let built = command_from_params(method, key, &params, self.now_ms);
        let applied = built.and_then(|cmd| self.store.apply(&cmd));
        match applied {
            Err(err) => self.check_error(id, &err, status, index, expected),
            Ok(applied) => {
                let event = applied
                    .into_event()
                    .expect("client commands yield one event");
                assert_eq!(success_status(&event), status, "{id}: status");
                self.check_ttl(id, &event, &params);
                let no_value = bool_param(&params, "noValueOnSuccess", true).unwrap();
                self.check_event(id, &event, no_value.unwrap_or(false), index, expected);
            }
        }
    }

    /// The expiry travels as `now + ttl`, computed by the proposer (engine/src/store/README.md §7).
    fn check_ttl(&self, id: &str, event: &Event, params: &[(String, String)]) {
        let ttl = params
            .iter()
            .find(|(n, _)| n == "ttl")
            .map(|(_, v)| v.as_str());
        if let Some(seconds) = ttl.filter(|t| !t.is_empty()) {
            let expected = self.now_ms + seconds.parse::<u64>().unwrap() * 1000;
            assert_eq!(
                event.node.expire_at_ms,
                Some(expected),
                "{id}: expiry instant"
            );
        }
    }

    fn put(&mut self, id: &str, key: &str, p: &[(&str, &str)], status: u16, index: u64, b: &str) {
        self.write(id, WriteMethod::Put, key, p, (status, index, b));
    }

    fn post(&mut self, id: &str, key: &str, p: &[(&str, &str)], status: u16, index: u64, b: &str) {
        self.write(id, WriteMethod::Post, key, p, (status, index, b));
    }

    fn delete(
        &mut self,
        id: &str,
        key: &str,
        p: &[(&str, &str)],
        status: u16,
        index: u64,
        b: &str,
    ) {
        self.write(id, WriteMethod::Delete, key, p, (status, index, b));
    }

    /// A plain GET (quorum reads give the same body; routing them through Raft is not the store's job).
    fn get(&mut self, id: &str, key: &str, p: &[(&str, &str)], status: u16, index: u64, b: &str) {
        self.tick();
        let params = pairs(p);
        let read = bool_param(&params, "recursive", true).and_then(|recursive| {
            let sorted = bool_param(&params, "sorted", true)?.unwrap_or(false);
            bool_param(&params, "quorum", true)?;
            self.store.get(key, recursive.unwrap_or(false), sorted)
        });
        match read {
            Err(err) => self.check_error(id, &err, status, index, b),
            Ok(event) => {
                assert_eq!(status, 200, "{id}: reads answer 200");
                self.check_event(id, &event, false, index, b);
            }
        }
    }

    /// A watch whose history scan must find `expected` (or nothing, for watches that timed out).
    fn watch(&mut self, id: &str, key: &str, recursive: bool, since: u64, expected: Option<&str>) {
        let found = self
            .store
            .event_since(key, recursive, since)
            .expect("watch is in the window");
        let body = found
            .as_ref()
            .map(|event| normalise(&self.body(event, false)));
        assert_eq!(
            body,
            expected.map(|b| normalise(&format!("{b}\n"))),
            "{id}: watch event"
        );
    }

    /// The leader's expiry tick (etcd's SYNC) at `now_ms`.
    fn expire_at(&mut self, now_ms: u64) -> Vec<Event> {
        self.now_ms = now_ms;
        self.store
            .apply(&Command::Expire { now_ms })
            .unwrap()
            .events()
            .to_vec()
    }

    /// Shorthand for writes the transcripts imply but do not show.
    fn setup_set(&mut self, key: &str, value: &str, ttl: Option<&str>) -> Event {
        self.tick();
        let mut params = vec![("value".to_string(), value.to_string())];
        if let Some(ttl) = ttl {
            params.push(("ttl".to_string(), ttl.to_string()));
        }
        let cmd = command_from_params(WriteMethod::Put, key, &params, self.now_ms).unwrap();
        self.store.apply(&cmd).unwrap().into_event().unwrap()
    }
}

const ERR_100_NOPE: &str =
    r#"{"errorCode":100,"message":"Key not found","cause":"/nope","index":5}"#;

#[test]
fn a1_basic_keys_operations_g2_to_g53() {
    let mut s = Session::new(3, T0_MS);
    a1_part1(&mut s);
    a1_part2(&mut s);
    a1_part3(&mut s);
}

fn a1_part1(s: &mut Session) {
    s.get(
        "G2",
        "/",
        &[],
        200,
        3,
        r#"{"action":"get","node":{"dir":true}}"#,
    );
    s.put("G3", "message", &[("value", "Hello world")], 201, 4,
        r#"{"action":"set","node":{"key":"/message","value":"Hello world","modifiedIndex":4,"createdIndex":4}}"#);
    s.put("G4", "message", &[("value", "Hello etcd")], 200, 5,
        r#"{"action":"set","node":{"key":"/message","value":"Hello etcd","modifiedIndex":5,"createdIndex":5},"prevNode":{"key":"/message","value":"Hello world","modifiedIndex":4,"createdIndex":4}}"#);
    s.get("G5", "/message", &[], 200, 5,
        r#"{"action":"get","node":{"key":"/message","value":"Hello etcd","modifiedIndex":5,"createdIndex":5}}"#);
    s.get("G7", "/nope", &[], 404, 5, ERR_100_NOPE);
    s.put("G8", "/foo", &[("value", "bar"), ("ttl", "20")], 201, 6,
        r#"{"action":"set","node":{"key":"/foo","value":"bar","expiration":"2026-11-23T19:04:11.861800055Z","ttl":20,"modifiedIndex":6,"createdIndex":6}}"#);
    s.put("G9", "/foo", &[("value", "bar"), ("ttl", ""), ("prevExist", "true")], 200, 7,
        r#"{"action":"update","node":{"key":"/foo","value":"bar","modifiedIndex":7,"createdIndex":6},"prevNode":{"key":"/foo","value":"bar","expiration":"2026-11-23T19:04:11.861800055Z","ttl":20,"modifiedIndex":6,"createdIndex":6}}"#);
    s.put(
        "G10",
        "/foo",
        &[("value", "three"), ("prevExist", "false")],
        412,
        7,
        r#"{"errorCode":105,"message":"Key already exists","cause":"/foo","index":7}"#,
    );
    s.put(
        "G11",
        "/missing",
        &[("value", "three"), ("prevExist", "true")],
        404,
        7,
        r#"{"errorCode":100,"message":"Key not found","cause":"/missing","index":7}"#,
    );
    s.put(
        "G12",
        "/foo",
        &[("value", "three"), ("prevValue", "two")],
        412,
        7,
        r#"{"errorCode":101,"message":"Compare failed","cause":"[two != bar]","index":7}"#,
    );
    s.put(
        "G13",
        "/foo",
        &[("value", "three"), ("prevIndex", "1")],
        412,
        7,
        r#"{"errorCode":101,"message":"Compare failed","cause":"[1 != 7]","index":7}"#,
    );
    s.put(
        "G14",
        "/foo",
        &[("value", "three"), ("prevIndex", "1"), ("prevValue", "two")],
        412,
        7,
        r#"{"errorCode":101,"message":"Compare failed","cause":"[two != bar] [1 != 7]","index":7}"#,
    );
    s.put("G15", "/foo", &[("value", "three"), ("prevValue", "bar")], 200, 8,
        r#"{"action":"compareAndSwap","node":{"key":"/foo","value":"three","modifiedIndex":8,"createdIndex":6},"prevNode":{"key":"/foo","value":"bar","modifiedIndex":7,"createdIndex":6}}"#);
    s.put("G16", "/foo", &[("value", "x"), ("prevValue", "")], 400, 0,
        r#"{"errorCode":201,"message":"PrevValue is Required in POST form","cause":"\"prevValue\" cannot be empty","index":0}"#);
    s.put("G17", "/foo", &[("value", "x"), ("ttl", "abc")], 400, 0,
        r#"{"errorCode":202,"message":"The given TTL in POST form is not a number","cause":"invalid value for \"ttl\"","index":0}"#);
    s.put("G18", "/foo", &[("value", "x"), ("prevIndex", "abc")], 400, 0,
        r#"{"errorCode":203,"message":"The given index in POST form is not a number","cause":"invalid value for \"prevIndex\"","index":0}"#);
    s.get("G19", "/foo", &[("recursive", "maybe")], 400, 0,
        r#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"recursive\"","index":0}"#);
    s.put("G20", "/foo", &[("value", "x"), ("wait", "true")], 400, 0,
        r#"{"errorCode":209,"message":"Invalid field","cause":"\"wait\" can only be used with GET requests","index":0}"#);
    assert_eq!(
        s.store.index(),
        8,
        "G10-G20: failures and reads do not move the index"
    );
}

fn a1_part2(s: &mut Session) {
    s.post("G21", "/queue", &[("value", "Job1")], 201, 9,
        r#"{"action":"create","node":{"key":"/queue/00000000000000000009","value":"Job1","modifiedIndex":9,"createdIndex":9}}"#);
    s.post("G22", "/queue", &[("value", "Job2")], 201, 10,
        r#"{"action":"create","node":{"key":"/queue/00000000000000000010","value":"Job2","modifiedIndex":10,"createdIndex":10}}"#);
    s.get("G23", "/queue", &[("sorted", "true")], 200, 10,
        r#"{"action":"get","node":{"key":"/queue","dir":true,"nodes":[{"key":"/queue/00000000000000000009","value":"Job1","modifiedIndex":9,"createdIndex":9},{"key":"/queue/00000000000000000010","value":"Job2","modifiedIndex":10,"createdIndex":10}],"modifiedIndex":9,"createdIndex":9}}"#);
    s.put(
        "G24",
        "/dir",
        &[("dir", "true")],
        201,
        11,
        r#"{"action":"set","node":{"key":"/dir","dir":true,"modifiedIndex":11,"createdIndex":11}}"#,
    );
    let not_file = r#"{"errorCode":102,"message":"Not a file","cause":"/dir","index":11}"#;
    s.put("G25", "/dir", &[("dir", "true")], 403, 11, not_file);
    s.put(
        "G26",
        "/dir",
        &[("dir", "true"), ("prevExist", "false")],
        412,
        11,
        r#"{"errorCode":105,"message":"Key already exists","cause":"/dir","index":11}"#,
    );
    s.put("G27", "/dir", &[("value", "x")], 403, 11, not_file);
    s.put(
        "G28",
        "/dir",
        &[("value", "y"), ("prevValue", "x")],
        403,
        11,
        not_file,
    );
    s.put(
        "G29",
        "/message/child",
        &[("value", "x")],
        400,
        11,
        r#"{"errorCode":104,"message":"Not a directory","cause":"/message","index":11}"#,
    );
    s.put(
        "G30",
        "/",
        &[("value", "x")],
        400,
        11,
        r#"{"errorCode":107,"message":"Root is read only","cause":"/","index":11}"#,
    );
    s.put("G31", "/dir/sub/leaf", &[("value", "v1")], 201, 12,
        r#"{"action":"set","node":{"key":"/dir/sub/leaf","value":"v1","modifiedIndex":12,"createdIndex":12}}"#);
    s.get("G32", "/dir", &[], 200, 12,
        r#"{"action":"get","node":{"key":"/dir","dir":true,"nodes":[{"key":"/dir/sub","dir":true,"modifiedIndex":12,"createdIndex":12}],"modifiedIndex":11,"createdIndex":11}}"#);
    s.get("G33", "/dir", &[("recursive", "true"), ("sorted", "true")], 200, 12,
        r#"{"action":"get","node":{"key":"/dir","dir":true,"nodes":[{"key":"/dir/sub","dir":true,"nodes":[{"key":"/dir/sub/leaf","value":"v1","modifiedIndex":12,"createdIndex":12}],"modifiedIndex":12,"createdIndex":12}],"modifiedIndex":11,"createdIndex":11}}"#);
    s.delete(
        "G34",
        "/dir",
        &[],
        403,
        12,
        r#"{"errorCode":102,"message":"Not a file","cause":"/dir","index":12}"#,
    );
    s.delete(
        "G35",
        "/dir",
        &[("dir", "true")],
        403,
        12,
        r#"{"errorCode":108,"message":"Directory not empty","cause":"/dir","index":12}"#,
    );
    s.delete("G36", "/dir", &[("recursive", "true")], 200, 13,
        r#"{"action":"delete","node":{"key":"/dir","dir":true,"modifiedIndex":13,"createdIndex":11},"prevNode":{"key":"/dir","dir":true,"modifiedIndex":11,"createdIndex":11}}"#);
    s.delete(
        "G37",
        "/foo",
        &[("prevValue", "wrong")],
        412,
        13,
        r#"{"errorCode":101,"message":"Compare failed","cause":"[wrong != three]","index":13}"#,
    );
    s.delete("G38", "/foo", &[("prevValue", "three")], 200, 14,
        r#"{"action":"compareAndDelete","node":{"key":"/foo","modifiedIndex":14,"createdIndex":6},"prevNode":{"key":"/foo","value":"three","modifiedIndex":8,"createdIndex":6}}"#);
    s.delete("G39", "/message", &[], 200, 15,
        r#"{"action":"delete","node":{"key":"/message","modifiedIndex":15,"createdIndex":5},"prevNode":{"key":"/message","value":"Hello etcd","modifiedIndex":5,"createdIndex":5}}"#);
}

fn a1_part3(s: &mut Session) {
    s.put("G40", "/_hidden", &[("value", "secret")], 201, 16,
        r#"{"action":"set","node":{"key":"/_hidden","value":"secret","modifiedIndex":16,"createdIndex":16}}"#);
    s.get("G41", "/", &[], 200, 16,
        r#"{"action":"get","node":{"dir":true,"nodes":[{"key":"/queue","dir":true,"modifiedIndex":9,"createdIndex":9}]}}"#);
    s.get("G42", "/_hidden", &[], 200, 16,
        r#"{"action":"get","node":{"key":"/_hidden","value":"secret","modifiedIndex":16,"createdIndex":16}}"#);
    s.put("G43", "/tdir", &[("dir", "true"), ("ttl", "30")], 201, 17,
        r#"{"action":"set","node":{"key":"/tdir","dir":true,"expiration":"2026-11-23T19:04:22.367622361Z","ttl":30,"modifiedIndex":17,"createdIndex":17}}"#);
    s.put("G44", "/tdir", &[("ttl", "60"), ("refresh", "true"), ("prevExist", "true"), ("dir", "true")], 200, 18,
        r#"{"action":"update","node":{"key":"/tdir","dir":true,"expiration":"2026-11-23T19:04:52.381513973Z","ttl":60,"modifiedIndex":18,"createdIndex":17},"prevNode":{"key":"/tdir","dir":true,"expiration":"2026-11-23T19:04:22.367622361Z","ttl":30,"modifiedIndex":17,"createdIndex":17}}"#);
    s.put("G45", "/k1", &[("value", "x"), ("refresh", "true"), ("ttl", "5")], 400, 0,
        r#"{"errorCode":211,"message":"Value provided on refresh","cause":"A value was provided on a refresh","index":0}"#);
    s.put("G46", "/k1", &[("refresh", "true")], 400, 0,
        r#"{"errorCode":212,"message":"A TTL must be provided on refresh","cause":"No TTL value set","index":0}"#);
    s.put(
        "G47",
        "/k1",
        &[("value", "x"), ("noValueOnSuccess", "true")],
        201,
        19,
        r#"{"action":"set"}"#,
    );
    let k1 =
        r#"{"action":"get","node":{"key":"/k1","value":"x","modifiedIndex":19,"createdIndex":19}}"#;
    s.get("G48", "/k1", &[("quorum", "true")], 200, 19, k1);
    s.watch("G49", "/k1", false, 1,
        Some(r#"{"action":"set","node":{"key":"/k1","value":"x","modifiedIndex":19,"createdIndex":19}}"#));
    s.get("G52", "/k1/", &[], 200, 19, k1);
    s.put("G53", "/k1", &[("dir", "true")], 200, 20,
        r#"{"action":"set","node":{"key":"/k1","dir":true,"modifiedIndex":20,"createdIndex":20},"prevNode":{"key":"/k1","value":"x","modifiedIndex":19,"createdIndex":19}}"#);
    s.get(
        "G62",
        "/_etcd/machines",
        &[],
        404,
        20,
        r#"{"errorCode":100,"message":"Key not found","cause":"/_etcd","index":20}"#,
    );
    a2_ttl_forms_cas(s);
    a2_watches(s);
    a3_history_window(s);
}

fn a2_ttl_forms_cas(s: &mut Session) {
    s.put("G101", "/zero", &[("value", "z"), ("ttl", "0")], 201, 21,
        r#"{"action":"set","node":{"key":"/zero","value":"z","expiration":"2026-11-23T19:04:08.626073717Z","modifiedIndex":21,"createdIndex":21}}"#);
    // G102: the next SYNC, about 0.5 s later, expires it with its own index.
    let expired = s.expire_at(s.now_ms + 500);
    assert_eq!(expired.len(), 1);
    s.get(
        "G102",
        "/zero",
        &[],
        404,
        22,
        r#"{"errorCode":100,"message":"Key not found","cause":"/zero","index":22}"#,
    );
    s.put("G103", "/neg", &[("value", "z"), ("ttl", "-1")], 400, 0,
        r#"{"errorCode":202,"message":"The given TTL in POST form is not a number","cause":"invalid value for \"ttl\"","index":0}"#);
    s.put("G104", "/qs", &[("value", "fromquery")], 201, 23,
        r#"{"action":"set","node":{"key":"/qs","value":"fromquery","modifiedIndex":23,"createdIndex":23}}"#);
    // G105: the HTTP layer lists body values before query values; the first one wins.
    s.put("G105", "/qs", &[("value", "frombody"), ("value", "fromquery")], 200, 24,
        r#"{"action":"set","node":{"key":"/qs","value":"frombody","modifiedIndex":24,"createdIndex":24},"prevNode":{"key":"/qs","value":"fromquery","modifiedIndex":23,"createdIndex":23}}"#);
    // G106: DELETE bodies never reach the parameters.
    s.delete("G106", "/qs", &[], 200, 25,
        r#"{"action":"delete","node":{"key":"/qs","modifiedIndex":25,"createdIndex":24},"prevNode":{"key":"/qs","value":"frombody","modifiedIndex":24,"createdIndex":24}}"#);
    s.put("G107", "/newkey", &[("value", "a"), ("prevExist", "false")], 201, 26,
        r#"{"action":"create","node":{"key":"/newkey","value":"a","modifiedIndex":26,"createdIndex":26}}"#);
    s.put("G108", "/newkey", &[("value", "b"), ("prevIndex", "26")], 200, 27,
        r#"{"action":"compareAndSwap","node":{"key":"/newkey","value":"b","modifiedIndex":27,"createdIndex":26},"prevNode":{"key":"/newkey","value":"a","modifiedIndex":26,"createdIndex":26}}"#);
    s.delete(
        "G109",
        "/newkey",
        &[("prevIndex", "1")],
        412,
        27,
        r#"{"errorCode":101,"message":"Compare failed","cause":"[1 != 27]","index":27}"#,
    );
    s.delete(
        "G110",
        "/queue",
        &[("prevValue", "x")],
        403,
        27,
        r#"{"errorCode":102,"message":"Not a file","cause":"/queue","index":27}"#,
    );
    s.put("G111", "/tdir2", &[("dir", "true"), ("ttl", "30")], 201, 28,
        r#"{"action":"set","node":{"key":"/tdir2","dir":true,"expiration":"2026-11-23T19:04:39.938889044Z","ttl":30,"modifiedIndex":28,"createdIndex":28}}"#);
    s.put("G112", "/tdir2", &[("dir", "true"), ("ttl", "31"), ("prevExist", "true")], 200, 29,
        r#"{"action":"update","node":{"key":"/tdir2","dir":true,"expiration":"2026-11-23T19:04:40.954519817Z","ttl":31,"modifiedIndex":29,"createdIndex":28},"prevNode":{"key":"/tdir2","dir":true,"expiration":"2026-11-23T19:04:39.938889044Z","ttl":30,"modifiedIndex":28,"createdIndex":28}}"#);
    s.put(
        "G113",
        "/tdir2",
        &[("value", "x"), ("prevExist", "true")],
        403,
        29,
        r#"{"errorCode":102,"message":"Not a file","cause":"/tdir2","index":29}"#,
    );
    s.put("G114", "/newkey", &[("value", "c"), ("ttl", "100"), ("prevExist", "true")], 200, 30,
        r#"{"action":"update","node":{"key":"/newkey","value":"c","expiration":"2026-11-23T19:05:49.983940542Z","ttl":100,"modifiedIndex":30,"createdIndex":26},"prevNode":{"key":"/newkey","value":"b","modifiedIndex":27,"createdIndex":26}}"#);
}

fn a2_watches(s: &mut Session) {
    // Each watch starts at X-Etcd-Index + 1; the "other client" write follows it.
    s.watch("G115 before", "/w1", false, 31, None);
    s.setup_set("/w1", "changed", None);
    s.watch("G115", "/w1", false, 31,
        Some(r#"{"action":"set","node":{"key":"/w1","value":"changed","modifiedIndex":31,"createdIndex":31}}"#));
    s.setup_set("/wdir/a/b", "deep", None);
    s.watch("G116", "/wdir", true, 32,
        Some(r#"{"action":"set","node":{"key":"/wdir/a/b","value":"deep","modifiedIndex":32,"createdIndex":32}}"#));
    // Index 33 is not shown; assume a write to the child, which a non-recursive watch ignores.
    s.setup_set("/wdir/a/b", "deeper", None);
    s.watch("G117", "/wdir", false, 33, None);
    s.delete("G118 delete", "/wdir", &[("recursive", "true")], 200, 34,
        r#"{"action":"delete","node":{"key":"/wdir","dir":true,"modifiedIndex":34,"createdIndex":32},"prevNode":{"key":"/wdir","dir":true,"modifiedIndex":32,"createdIndex":32}}"#);
    s.watch("G118", "/wdir/a/b", false, 34,
        Some(r#"{"action":"delete","node":{"key":"/wdir","dir":true,"modifiedIndex":34,"createdIndex":32},"prevNode":{"key":"/wdir","dir":true,"modifiedIndex":32,"createdIndex":32}}"#));
    let short = s.setup_set("/ttlkey", "short", Some("1"));
    assert_eq!(short.index, 35);
    s.expire_at(short.node.expire_at_ms.unwrap() + 300);
    s.watch("G119", "/ttlkey", false, 36,
        Some(r#"{"action":"expire","node":{"key":"/ttlkey","modifiedIndex":36,"createdIndex":35},"prevNode":{"key":"/ttlkey","value":"short","expiration":"2026-11-23T19:04:14.579008939Z","modifiedIndex":35,"createdIndex":35}}"#));
    s.setup_set("/s1", "one", None);
    s.setup_set("/s1", "two", None);
    // G120: a stream watch re-scans from the last event's index + 1.
    s.watch("G120 first", "/s1", false, 37,
        Some(r#"{"action":"set","node":{"key":"/s1","value":"one","modifiedIndex":37,"createdIndex":37}}"#));
    s.watch("G120 second", "/s1", false, 38,
        Some(r#"{"action":"set","node":{"key":"/s1","value":"two","modifiedIndex":38,"createdIndex":38},"prevNode":{"key":"/s1","value":"one","modifiedIndex":37,"createdIndex":37}}"#));
    s.setup_set("/_hid/x", "h", None);
    s.watch("G121", "/", true, 39, None);
    s.setup_set("/_hid/x", "h2", None);
    s.watch("G122", "/_hid/x", false, 40,
        Some(r#"{"action":"set","node":{"key":"/_hid/x","value":"h2","modifiedIndex":40,"createdIndex":40},"prevNode":{"key":"/_hid/x","value":"h","modifiedIndex":39,"createdIndex":39}}"#));
    s.watch("G123", "/w1", false, 999_999, None);
}

fn a3_history_window(s: &mut Session) {
    // The recording made 1100 writes between G123 and G131.
    for n in 0..1100 {
        s.setup_set("/bulk", &n.to_string(), None);
    }
    let err = s.store.event_since("/bulk", false, 5).unwrap_err();
    s.check_error("G131", &err, 400, 1140,
        r#"{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [141/5]","index":1140}"#);
    s.get("G132", "/bulk", &[], 200, 1140,
        r#"{"action":"get","node":{"key":"/bulk","value":"1099","modifiedIndex":1140,"createdIndex":1140}}"#);
}

#[test]
fn a4_a7_second_node_g141_to_g193() {
    let mut s = Session::new(263, T0_MS + 335_000);
    a4_part1(&mut s);
    a4_part2(&mut s);
    a7_refresh_and_dir_expiry(&mut s);
}

fn a4_part1(s: &mut Session) {
    s.put("G141", "/ttlclear", &[("value", "a"), ("ttl", "100")], 201, 264,
        r#"{"action":"set","node":{"key":"/ttlclear","value":"a","expiration":"2026-11-23T19:09:46.529912747Z","ttl":100,"modifiedIndex":264,"createdIndex":264}}"#);
    s.put("G142", "/ttlclear", &[("value", "b"), ("prevExist", "true")], 200, 265,
        r#"{"action":"update","node":{"key":"/ttlclear","value":"b","modifiedIndex":265,"createdIndex":264},"prevNode":{"key":"/ttlclear","value":"a","expiration":"2026-11-23T19:09:46.529912747Z","ttl":100,"modifiedIndex":264,"createdIndex":264}}"#);
    s.put("G143", "/ttlclear", &[("value", "c"), ("prevIndex", "0")], 200, 266,
        r#"{"action":"set","node":{"key":"/ttlclear","value":"c","modifiedIndex":266,"createdIndex":266},"prevNode":{"key":"/ttlclear","value":"b","modifiedIndex":265,"createdIndex":264}}"#);
    s.put(
        "G144",
        "/ttlclear",
        &[("value", "d"), ("prevExist", "false"), ("prevValue", "zzz")],
        412,
        266,
        r#"{"errorCode":105,"message":"Key already exists","cause":"/ttlclear","index":266}"#,
    );
    s.put("G145", "/ttlclear", &[("value", "e"), ("prevExist", "true"), ("prevValue", "c")], 200, 267,
        r#"{"action":"compareAndSwap","node":{"key":"/ttlclear","value":"e","modifiedIndex":267,"createdIndex":266},"prevNode":{"key":"/ttlclear","value":"c","modifiedIndex":266,"createdIndex":266}}"#);
    s.put("G146", "/ttlclear", &[("value", "f"), ("prevexist", "false")], 200, 268,
        r#"{"action":"set","node":{"key":"/ttlclear","value":"f","modifiedIndex":268,"createdIndex":268},"prevNode":{"key":"/ttlclear","value":"e","modifiedIndex":267,"createdIndex":266}}"#);
    s.get("G147", "/ttlclear", &[("recursive", "TRUE"), ("sorted", "1"), ("quorum", "t")], 200, 268,
        r#"{"action":"get","node":{"key":"/ttlclear","value":"f","modifiedIndex":268,"createdIndex":268}}"#);
    s.put("G148", "/dv", &[("dir", "true"), ("value", "ignored")], 201, 269,
        r#"{"action":"set","node":{"key":"/dv","dir":true,"modifiedIndex":269,"createdIndex":269}}"#);
    s.post("G149", "/dv", &[("dir", "true")], 201, 270,
        r#"{"action":"create","node":{"key":"/dv/00000000000000000270","dir":true,"modifiedIndex":270,"createdIndex":270}}"#);
    s.delete("G150", "/ttlclear", &[("dir", "true")], 200, 271,
        r#"{"action":"delete","node":{"key":"/ttlclear","modifiedIndex":271,"createdIndex":268},"prevNode":{"key":"/ttlclear","value":"f","modifiedIndex":268,"createdIndex":268}}"#);
}

fn a4_part2(s: &mut Session) {
    // G151/G152: the HTTP layer percent-decodes the path before the store sees the key.
    s.put("G151", "/a/b", &[("value", "x")], 201, 272,
        r#"{"action":"set","node":{"key":"/a/b","value":"x","modifiedIndex":272,"createdIndex":272}}"#);
    s.put("G152", "/sp ace/été", &[("value", "x")], 201, 273,
        r#"{"action":"set","node":{"key":"/sp ace/été","value":"x","modifiedIndex":273,"createdIndex":273}}"#);
    s.delete(
        "G155",
        "/",
        &[("recursive", "true")],
        400,
        273,
        r#"{"errorCode":107,"message":"Root is read only","cause":"/","index":273}"#,
    );
    s.post("G156", "/", &[("value", "rootq")], 201, 274,
        r#"{"action":"create","node":{"key":"/00000000000000000274","value":"rootq","modifiedIndex":274,"createdIndex":274}}"#);
    s.put("G157", "/afile", &[("value", "Hello\nWorld")], 201, 275,
        r#"{"action":"set","node":{"key":"/afile","value":"Hello\nWorld","modifiedIndex":275,"createdIndex":275}}"#);
    s.put("G158", "/empty", &[("value", "")], 201, 276,
        r#"{"action":"set","node":{"key":"/empty","value":"","modifiedIndex":276,"createdIndex":276}}"#);
    s.put("G159", "/novalue", &[], 201, 277,
        r#"{"action":"set","node":{"key":"/novalue","value":"","modifiedIndex":277,"createdIndex":277}}"#);
    // G162: the HTTP layer does not parse JSON bodies, so no parameters arrive.
    s.put("G162", "/jsonbody", &[], 201, 278,
        r#"{"action":"set","node":{"key":"/jsonbody","value":"","modifiedIndex":278,"createdIndex":278}}"#);
}

fn a7_refresh_and_dir_expiry(s: &mut Session) {
    // Indexes 279-282 are not shown (other client traffic).
    for n in 279..=282 {
        assert_eq!(s.setup_set("/filler", &n.to_string(), None).index, n);
    }
    assert_eq!(s.setup_set("/rk", "r", Some("100")).index, 283);
    // G191: the watch starts at 284; the refresh at 284 must not wake it, the set at 285 does.
    s.put("G191 refresh", "/rk", &[("ttl", "200"), ("refresh", "true"), ("prevExist", "true")], 200, 284,
        r#"{"action":"update","node":{"key":"/rk","value":"r","expiration":"2026-11-23T19:14:06.174726815Z","ttl":200,"modifiedIndex":284,"createdIndex":283},"prevNode":{"key":"/rk","value":"r","expiration":"2026-11-23T19:12:26.174726815Z","ttl":100,"modifiedIndex":283,"createdIndex":283}}"#);
    s.watch("G191 not woken", "/rk", false, 284, None);
    s.setup_set("/rk", "r2", None);
    s.watch("G191", "/rk", false, 284,
        Some(r#"{"action":"set","node":{"key":"/rk","value":"r2","modifiedIndex":285,"createdIndex":285},"prevNode":{"key":"/rk","value":"r","expiration":"2026-11-23T19:14:06.174726815Z","ttl":200,"modifiedIndex":284,"createdIndex":283}}"#));
    s.put("G192 dir", "/edir", &[("dir", "true"), ("ttl", "1")], 201, 286,
        r#"{"action":"set","node":{"key":"/edir","dir":true,"expiration":"2026-11-23T19:10:47.5044069Z","ttl":1,"modifiedIndex":286,"createdIndex":286}}"#);
    let expires = s
        .store
        .get("/edir", false, false)
        .unwrap()
        .node
        .expire_at_ms
        .unwrap();
    s.setup_set("/edir/child", "c", None);
    s.watch("G192 pending", "/edir/child", false, 288, None);
    let expired = s.expire_at(expires + 200);
    assert_eq!(
        expired.len(),
        1,
        "only the directory expires; the child goes with it"
    );
    s.watch("G192", "/edir/child", false, 288,
        Some(r#"{"action":"expire","node":{"key":"/edir","dir":true,"modifiedIndex":288,"createdIndex":286},"prevNode":{"key":"/edir","dir":true,"expiration":"2026-11-23T19:10:47.5044069Z","modifiedIndex":286,"createdIndex":286}}"#));
    s.get(
        "G193",
        "/edir/child",
        &[],
        404,
        288,
        r#"{"errorCode":100,"message":"Key not found","cause":"/edir","index":288}"#,
    );
}
