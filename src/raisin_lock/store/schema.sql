-- The raisin store database, schema version 1 (history: store/db.py).
--
-- The database is an index over the store directory: a path is valid exactly
-- when it has a row in valid_paths, and a row is written only after the
-- path's content is complete, canonical, fsynced and hashed. It can be
-- rebuilt from the directory (Store.reindex), except the derivations cache.
--
-- Executed statement by statement inside one BEGIN IMMEDIATE transaction by
-- Database._initialise; every statement must be idempotent (IF NOT EXISTS).
-- Pragmas (WAL, synchronous, foreign_keys, busy_timeout) are set in db.py.

-- Key/value facts about the database itself. 'schema_version' (an integer
-- as text): a raisin that finds a higher version refuses to open it.
-- 'needs_reindex' (present only until done): written by the transaction
-- that creates the database, removed once Store.reindex has adopted the
-- complete paths already in the directory (a lost database must not make
-- cleanup delete them).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per valid store path.
CREATE TABLE IF NOT EXISTS valid_paths (
    id                INTEGER PRIMARY KEY,   -- internal; refs point here
    path              TEXT NOT NULL UNIQUE,  -- base name "<digest>-<name>", never an absolute
                                             -- path, so the store directory can move
    nar_hash          TEXT NOT NULL,         -- SHA-256 of the content's NAR, SRI "sha256-<b64>"
    nar_size          INTEGER NOT NULL,      -- size of that NAR in bytes
    deriver           TEXT,                  -- hash of the derivation that built it; NULL if unknown
    registration_time INTEGER NOT NULL,      -- Unix seconds when it became valid
    sandboxed         INTEGER NOT NULL DEFAULT 1 CHECK (sandboxed IN (0, 1)),
                                             -- 1 if built inside the sandbox
    ca                TEXT                   -- content-address kind ("source"), NULL for
                                             -- input-addressed build outputs
);

-- The reference graph: referrer's content mentions reference's digest.
-- A path may refer to itself. Deleting a path deletes its outgoing edges
-- (CASCADE) but is refused while another path still refers to it (RESTRICT),
-- so the valid set is always closed under references.
CREATE TABLE IF NOT EXISTS refs (
    referrer  INTEGER NOT NULL REFERENCES valid_paths(id) ON DELETE CASCADE,
    reference INTEGER NOT NULL REFERENCES valid_paths(id) ON DELETE RESTRICT,
    PRIMARY KEY (referrer, reference)
) WITHOUT ROWID;

-- "Who refers to X" (referrers, gc, the RESTRICT check) without a table scan.
CREATE INDEX IF NOT EXISTS refs_by_reference ON refs (reference);

-- Cache: which output path a derivation hash names. out_path is a base name
-- and need not be valid (record before build, or after gc); not a foreign key.
CREATE TABLE IF NOT EXISTS derivations (
    drv_hash TEXT PRIMARY KEY,               -- the derivation's hash (as the planner prints it)
    name     TEXT NOT NULL,                  -- component name, for humans
    out_path TEXT NOT NULL                   -- base name of its output path
);
