/* stanzad plugin SDK: the C ABI between the server and shared-library plugins.
 *
 * Rules (see docs/plugins.md, "ABI and versioning"):
 *  - SZ_ABI_MAJOR changes only when something is removed, reordered or retyped; the loader
 *    refuses a plugin built for another major, naming both.
 *  - Within a major, structs only grow at the end. Each starts with its size as the server
 *    (or plugin) built it; check SZ_HAS(api, member) before using a member added later.
 *  - Strings cross as pointer + length (sz_str), never NUL-terminated unless said so.
 *  - Memory is freed by the side that allocated it; "taken" parameters transfer ownership.
 *  - No C++ exception crosses this boundary: the C++ wrapper catches everything.
 */
#ifndef STANZAD_PLUGIN_H
#define STANZAD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SZ_ABI_MAJOR 1
#define SZ_ABI_MINOR 5

/** True if `ptr` (a struct with a leading uint32_t size) has `member`. */
#define SZ_HAS(ptr, member) \
  ((ptr)->size >= offsetof(__typeof__(*(ptr)), member) + sizeof((ptr)->member))

#if defined(__GNUC__)
#define SZ_EXPORT __attribute__((visibility("default")))
#else
#define SZ_EXPORT
#endif

/** A string slice. `data` may be NULL when `len` is 0. */
typedef struct {
  const char *data;
  size_t len;
} sz_str;

typedef struct sz_host
    sz_host; /**< server-owned; one per plugin instance (per shard); lives until unload */
typedef struct sz_event sz_event; /**< server-owned; valid only during the handler call */
typedef struct sz_stanza
    sz_stanza; /**< an XML element; owned by whoever holds it (see each call) */

/** What a handler decided. */
typedef enum {
  SZ_PASS = 0,    /**< not mine: the next handler runs */
  SZ_HANDLED = 1, /**< taken: no further handler runs */
  SZ_ERROR = 2    /**< refused: the core bounces the error set with event_set_error (default
                       internal-server-error) to the sender */
} sz_verdict;

/** Priority bands (higher runs first; ties run in load order). */
#define SZ_PRIORITY_GUARD 1000
#define SZ_PRIORITY_ENRICH 500
#define SZ_PRIORITY_NORMAL 0
#define SZ_PRIORITY_DELIVER (-1000)

/** Log levels. */
typedef enum { SZ_LOG_DEBUG = 0, SZ_LOG_INFO = 1, SZ_LOG_WARN = 2, SZ_LOG_ERROR = 3 } sz_log_level;

typedef struct sz_session sz_session; /**< one bound resource; borrowed during a callback (1.2) */

typedef sz_verdict (*sz_handler)(sz_event *ev, void *user);
typedef void (*sz_timer_fn)(void *user);
/** Receives one string (e.g. a feature, or a key-value document); `user` as given. */
typedef void (*sz_str_fn)(void *user, sz_str value);
/** Receives one bound resource of an account (1.2). */
typedef void (*sz_session_fn)(void *user, const sz_session *session);
/** A task posted to a shard (1.2): `here` is this plugin's instance on that shard, or NULL if
 * the plugin was unloaded meanwhile (the task must still free what `user` owns). */
typedef void (*sz_task_fn)(sz_host *here, void *user);
/** The end of an asynchronous write (1.3): `here` as for sz_task_fn, `ok` 1 once committed,
 * 0 if it failed (then nothing of it was written, or it is not known whether it landed). */
typedef void (*sz_done_fn)(sz_host *here, void *user, int ok);

/** The server's functions, given to load(). Lives until unload. */
typedef struct {
  uint32_t size; /**< sizeof(sz_host_api) in the server's build */

  /* ---- plugin set-up ---------------------------------------------------------------- */
  /** Registers a handler for `event` (NUL-terminated). @return 0, or -1 if the name is invalid. */
  int (*hook)(sz_host *, const char *event, int32_t priority, sz_handler fn, void *user);
  /** Logs one line (no trailing newline needed). */
  void (*log)(sz_host *, sz_log_level level, const char *msg, size_t len);
  /** Declares a service discovery feature (XEP-0030) of this plugin's host(s). */
  void (*add_feature)(sz_host *, sz_str var);
  /** Declares a service discovery identity. */
  void (*add_identity)(sz_host *, sz_str category, sz_str type, sz_str name);
  /** The value of a declared option as configured (or its default). Valid until unload. */
  sz_str (*get_option)(sz_host *, sz_str name);
  /** The virtual host this instance serves, or an empty string for a global plugin. */
  sz_str (*host_name)(sz_host *);
  /** The shard (event loop) this instance runs on, 0-based, and how many there are. */
  uint32_t (*shard_index)(sz_host *);
  uint32_t (*shard_count)(sz_host *);
  /** Calls fn(user, var) for every feature every plugin declared for `host` (disco). */
  void (*each_feature)(sz_host *, sz_str host, sz_str_fn fn, void *user);
  /** Calls fn(user, "category/type/name") for every identity declared for `host`. */
  void (*each_identity)(sz_host *, sz_str host, sz_str_fn fn, void *user);
  /** Whether `domain` is one of this server's virtual hosts. */
  int (*is_local_host)(sz_host *, sz_str domain);

  /* ---- stanzas ------------------------------------------------------------------------ */
  /** A new element; caller owns it (stanza_free, or hand it to a call that takes it). */
  sz_stanza *(*stanza_new)(sz_str name, sz_str xmlns);
  /** Parses one element from text; NULL if not well-formed. Caller owns it. */
  sz_stanza *(*stanza_parse)(sz_str xml);
  sz_stanza *(*stanza_copy)(const sz_stanza *);
  void (*stanza_free)(sz_stanza *);
  sz_str (*stanza_name)(const sz_stanza *);
  sz_str (*stanza_xmlns)(const sz_stanza *);
  /** An attribute; {NULL, 0} when absent. Valid until the element changes. */
  sz_str (*stanza_attr)(const sz_stanza *, sz_str name);
  void (*stanza_set_attr)(sz_stanza *, sz_str name, sz_str value);
  void (*stanza_remove_attr)(sz_stanza *, sz_str name);
  /** First element child with that name (and namespace if xmlns.len > 0); borrowed. */
  sz_stanza *(*stanza_child)(sz_stanza *, sz_str name, sz_str xmlns);
  /** Number of element children, and the i-th (borrowed). */
  size_t (*stanza_child_count)(const sz_stanza *);
  sz_stanza *(*stanza_child_at)(sz_stanza *, size_t index);
  /** Appends a new child element and returns it (borrowed, owned by the parent). Empty xmlns
   * means the parent's namespace. */
  sz_stanza *(*stanza_add_child)(sz_stanza *parent, sz_str name, sz_str xmlns);
  /** Appends `child` (taken) and returns it, now owned by the parent. */
  sz_stanza *(*stanza_append)(sz_stanza *parent, sz_stanza *child);
  void (*stanza_add_text)(sz_stanza *, sz_str text);
  /** Removes every child node. */
  void (*stanza_clear)(sz_stanza *);
  /** Removes the first child element with that name/namespace; 1 if one was removed. */
  int (*stanza_remove_child)(sz_stanza *, sz_str name, sz_str xmlns);
  /** The concatenated text of the element's direct text nodes; calls fn once. */
  void (*stanza_text)(const sz_stanza *, sz_str_fn fn, void *user);
  /** The element as XML (jabber:client default namespace); calls fn once. */
  void (*stanza_serialize)(const sz_stanza *, sz_str_fn fn, void *user);

  /* ---- events ------------------------------------------------------------------------- */
  sz_str (*event_name)(sz_event *);
  /** The stanza being processed; borrowed and mutable (a rewrite is seen by later handlers). */
  sz_stanza *(*event_stanza)(sz_event *);
  /** The stanza's verified sender and its target, as normalized JIDs (may be empty). */
  sz_str (*event_from)(sz_event *);
  sz_str (*event_to)(sz_event *);
  /** The session's full JID for session events and stanza/in|out; empty otherwise. */
  sz_str (*event_session_jid)(sz_event *);
  /** Sets the error an SZ_ERROR verdict bounces: a RFC 6120 §8.3.3 condition, the error
   * type ("cancel", "modify"… or empty for the condition's usual one) and an optional text. */
  void (*event_set_error)(sz_event *, sz_str condition, sz_str type, sz_str text);
  /** Sends `reply` (taken) to the sender of the event's stanza; its to/from are set for you
   * (from = the event's `to`). */
  void (*event_reply)(sz_event *, sz_stanza *reply);

  /* ---- sending, timers, storage ------------------------------------------------------- */
  /** Routes `stanza` (taken) as if the server sent it: `from` and `to` must be set. */
  void (*send)(sz_host *, sz_stanza *stanza);
  /** Calls fn(user) once after `ms` milliseconds on this shard. @return a timer id > 0. */
  uint64_t (*timer_add)(sz_host *, uint64_t ms, sz_timer_fn fn, void *user);
  void (*timer_cancel)(sz_host *, uint64_t id);
  /** Per-user key-value documents (store = the plugin's name for its data). Blocking on the
   * embedded store; returns 1 and calls fn with the value if found, 0 if not, -1 on error. */
  int (*kv_get)(sz_host *, sz_str user_jid, sz_str store, sz_str key, sz_str_fn fn, void *user);
  /** Stores (value.data != NULL) or deletes (value.data == NULL). @return 0, or -1 on error. */
  int (*kv_set)(sz_host *, sz_str user_jid, sz_str store, sz_str key, sz_str value);
  /** Fires a plugin's own event (name starts with the plugin's name) to every handler on
   * this shard; `stanza` is borrowed and may be NULL. @return the verdict. */
  sz_verdict (*fire)(sz_host *, const char *event, sz_stanza *stanza);

  /* ---- added in 1.1 (check SZ_HAS) -------------------------------------------------- */
  /** Declares a stream feature (RFC 6120 §4.3.2): `xml` is one element, offered in
   * <stream:features> at `stage` SZ_STAGE_PRE_AUTH (after TLS, beside SASL) or
   * SZ_STAGE_POST_AUTH (beside resource binding). Its elements from the client arrive as the
   * `stream/element` event. */
  void (*add_stream_feature)(sz_host *, sz_str xml, int stage);

  /* ---- added in 1.2 (check SZ_HAS) -------------------------------------------------- */
  /** The shard that owns an entity: a local account's bare JID (or any JID: its bare part). Its
   * `/bare`, `/full` and `account/...` events run there. */
  uint32_t (*owner_shard)(sz_host *, sz_str jid);
  /** Runs fn(instance, user) on `shard` with this plugin's instance there, after what is already
   * queued on it. Tasks posted by one shard to another run in the order posted. */
  void (*post)(sz_host *, uint32_t shard, sz_task_fn fn, void *user);
  /** What this instance's load() returned (NULL while load runs): for posted tasks. */
  void *(*instance_state)(sz_host *);
  /** Lists the bound resources of a local account, in binding order; only on the account's
   * owner shard. @return how many were listed, or -1 when called on another shard. */
  int (*account_sessions)(sz_host *, sz_str bare_jid, sz_session_fn fn, void *user);
  /** A listed session's full JID. */
  sz_str (*session_jid)(const sz_session *);
  /** 1 once the resource sent available presence (and not unavailable since); 0 otherwise. */
  int (*session_available)(const sz_session *);
  int32_t (*session_priority)(const sz_session *);
  /** The last available presence the resource broadcast, or NULL; borrowed. */
  const sz_stanza *(*session_presence)(const sz_session *);
  /** A property a plugin set on the session (session_set); {NULL, 0} when unset. */
  sz_str (*session_get)(const sz_session *, sz_str key);
  /** Sets (value.data != NULL) or clears a property of a bound session (full JID), callable on
   * any shard: it is applied on the account's owner shard, at once when called there. Properties
   * end with the session (resumption keeps them). Keys are shared: start them with your
   * plugin's name. */
  void (*session_set)(sz_host *, sz_str full_jid, sz_str key, sz_str value);
  /** The i-th property of a listed session (0-based): 1 with *key and *value set, 0 past the
   * end. */
  int (*session_property_at)(const sz_session *, size_t index, sz_str *key, sz_str *value);
  /** Whether a local account exists (a storage read): 1, 0, or -1 on error. */
  int (*user_exists)(sz_host *, sz_str bare_jid);
  /** Calls fn(user, key) for every key of `store` of a user, in key order. @return the count,
   * or -1 on error. */
  int (*kv_keys)(sz_host *, sz_str user_jid, sz_str store, sz_str_fn fn, void *user);
  /** Offline queue (XEP-0160) of a local account: appends one stanza (XML text), committed
   * before the call returns. @return the queue's length after it, or -1 on error. */
  int64_t (*offline_push)(sz_host *, sz_str user_jid, sz_str stanza_xml);
  /** The offline queue's length, or -1 on error. */
  int64_t (*offline_count)(sz_host *, sz_str user_jid);
  /** Takes the whole offline queue, oldest first: fn(user, xml) for each, then it is empty.
   * @return the count, or -1 on error (then the queue is untouched). */
  int (*offline_take)(sz_host *, sz_str user_jid, sz_str_fn fn, void *user);
  /** Adds an element (taken) to the <error/> an SZ_ERROR verdict bounces, after the condition
   * (e.g. <blocked xmlns='urn:xmpp:blocking:errors'/>). */
  void (*event_set_error_payload)(sz_event *, sz_stanza *payload);
  /** On `stanza/out` and session events on the session's shard: writes `stanza` (taken) to that
   * session's stream at once, before the stanza being processed, without passing `stanza/out`
   * again. @return 0, or -1 when the event has no session (the stanza is freed). */
  int (*event_session_write)(sz_event *, sz_stanza *stanza);
  /** The client's IP address for events of a session (stanza/in, stream/preauth…), else empty. */
  sz_str (*event_remote_address)(sz_event *);
  /** Creates a local account (the JID's node is normalized; SCRAM keys are derived and stored,
   * never the password); `user/created` fires on its owner shard. @return 1 created, 0 it
   * exists, -2 not a valid local account JID (e.g. a node nodeprep refuses), -1 error. */
  int (*user_create)(sz_host *, sz_str bare_jid, sz_str password);
  /** Removes a local account with every document and queue it had; `user/deleted` fires on its
   * owner shard and its sessions end with <not-authorized/>. @return 1, 0 none, -1 error. */
  int (*user_remove)(sz_host *, sz_str bare_jid);
  /** Replaces an account's password (its SCRAM keys). @return 1, 0 no such account, -1 error. */
  int (*user_set_password)(sz_host *, sz_str bare_jid, sz_str password);

  /* ---- added in 1.3 (check SZ_HAS) -------------------------------------------------- */
  /** kv_set without waiting: the write joins the storage's next group commit, after every
   * write already queued (so a later kv_set or account removal wins), and done(here, user, ok)
   * runs on this shard once it committed or failed (done may be NULL). Until then kv_get may
   * still return the old value: keep what you wrote if you read it back. For data whose loss
   * in a crash is acceptable (last activity, caches), never for what a client was promised.
   * @return 0 (done will run, with ok 0 if the storage refused the write), -1 on an error
   * found at once (done is not called). */
  int (*kv_set_async)(sz_host *, sz_str user_jid, sz_str store, sz_str key, sz_str value,
                      sz_done_fn done, void *user);

  /* ---- added in 1.4 (check SZ_HAS) -------------------------------------------------- */
  /** Prepares a JID exactly as the core prepares the addresses it stamps on stanzas (RFC 7622
   * §3 splitting; Nodeprep, Nameprep and Resourceprep of RFC 3920 via libidn): "Ärger@Example.COM"
   * gives "ärger@example.com", so a JID taken from a payload (a roster item, a blocklist item)
   * compares equal to an event's `from`. Writes the prepared JID to out[0, cap), not
   * NUL-terminated; `out` may be NULL when `cap` is 0 (to ask for the size).
   * @param len receives the prepared JID's length in bytes for SZ_JID_OK and SZ_JID_TOO_SMALL
   *            (may be NULL).
   * @return SZ_JID_OK (written), SZ_JID_MALFORMED (not a JID: empty part, a character a
   *         profile prohibits, invalid UTF-8, a part over 1023 bytes…; nothing written) or
   *         SZ_JID_TOO_SMALL (nothing written; call again with cap >= *len). A buffer of
   *         SZ_JID_MAX_BYTES always suffices. */
  int (*jid_prep)(sz_str jid, char *out, size_t cap, size_t *len);
  /** jid_prep, then without the resource: "Ärger@Example.COM/Home" gives "ärger@example.com".
   * A resource must still be valid (Resourceprep) for the JID to be well-formed. */
  int (*jid_prep_bare)(sz_str jid, char *out, size_t cap, size_t *len);

  /* ---- added in 1.5 (check SZ_HAS) -------------------------------------------------- */
  /** offline_push without blocking the shard, for a `message/offline` handler on the account's
   * owner shard: the stanza joins the storage's next group commit, behind every write already
   * queued (offline_take, itself a write, sees it), and offline_count on this shard counts it
   * at once. The sender's XEP-0198 acknowledgement of the message `ev` carries waits for that
   * commit instead of for the handler's return; if the write fails the message goes back to its
   * sender as an error (internal-server-error, wait). Return SZ_HANDLED from the handler.
   * @param ev the message/offline event being handled, or NULL when no sender waits.
   * @return 0 (queued), -1 on an error found at once (nothing queued: answer with an error). */
  int (*offline_push_async)(sz_host *, sz_event *ev, sz_str user_jid, sz_str stanza_xml);
  /** Delivers the account's offline queue, oldest first, to `full_jid` (by the bare JID's rules
   * if that resource is gone by then), on the account's owner shard. Unlike offline_take, a
   * message leaves the store only once it was written to a client's stream, stored again or
   * refused: if the server dies before that, the next delivery has it again (possibly a second
   * time). Sees every offline_push_async queued before it.
   * @return the number of messages routed, or -1 on error (then nothing was). */
  int64_t (*offline_deliver)(sz_host *, sz_str user_jid, sz_str full_jid);
} sz_host_api;

/** Return codes of jid_prep and jid_prep_bare (1.4). */
#define SZ_JID_OK 0
#define SZ_JID_MALFORMED (-1)
#define SZ_JID_TOO_SMALL (-2)
/** The longest prepared JID: three parts of at most 1023 bytes each, '@' and '/'. */
#define SZ_JID_MAX_BYTES 3071

#define SZ_STAGE_PRE_AUTH 0
#define SZ_STAGE_POST_AUTH 1

/** The kind of an option's value, for validation and docs. */
typedef enum { SZ_OPT_STRING = 0, SZ_OPT_INTEGER = 1, SZ_OPT_BOOLEAN = 2 } sz_option_type;

/** A configuration option the plugin accepts (name starts with the plugin's name). */
typedef struct {
  const char *name; /**< NUL-terminated, e.g. "ping_interval" */
  sz_option_type type;
  const char *default_value; /**< NUL-terminated text form */
  int64_t min, max;          /**< bounds for integers (ignored otherwise) */
  const char *description;   /**< one line, for docs and errors */
} sz_option;

/** A plugin's descriptor, returned by its one exported symbol. Static storage. */
typedef struct {
  uint32_t abi_major; /**< SZ_ABI_MAJOR the plugin was built with */
  uint32_t size;      /**< sizeof(sz_plugin) in the plugin's build */
  const char *name, *version;
  /** Per shard: set the plugin up (hook, add_feature…). @return state passed to unload,
   * or NULL to refuse (log why first). */
  void *(*load)(sz_host *, const sz_host_api *);
  void (*unload)(void *state);
  const sz_option *options; /**< may be NULL */
  size_t option_count;
  const char *const *
      dependencies; /**< names of plugins that must be loaded first; NULL-terminated list or NULL */
} sz_plugin;

/** The one exported symbol of a plugin. */
typedef const sz_plugin *(*sz_entry_fn)(void);
#define SZ_ENTRY_SYMBOL "stanzad_plugin_v1"

#ifdef __cplusplus
}
#endif

#endif /* STANZAD_PLUGIN_H */
