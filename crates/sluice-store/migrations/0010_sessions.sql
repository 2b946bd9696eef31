-- Console sessions: a browser signs in once with its token and then holds
-- a session cookie. Only the cookie's hash is stored (as for tokens); the
-- CSRF token is per session and is not a credential on its own.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- Unix seconds; a session past it is refused and removed.
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user_id);
