-- Admin accounts, project API keys and the single row of generated server secrets (issue 5).
CREATE TABLE admins (
    id            UUID PRIMARY KEY,
    -- Stored lower-cased, so uniqueness is case-insensitive.
    email         TEXT NOT NULL UNIQUE CHECK (email <> '' AND email = lower(email)),
    -- argon2id PHC string.
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at    TIMESTAMPTZ NOT NULL,
    last_login_at TIMESTAMPTZ
);

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL CHECK (name <> ''),
    environment  TEXT NOT NULL DEFAULT 'production' CHECK (environment <> ''),
    -- `sk_sensei_<id>`: the public part, shown in listings and logs, used for lookup.
    prefix       TEXT NOT NULL UNIQUE,
    -- HMAC-SHA-256(pepper, full key): 32 bytes. The key itself is never stored.
    key_hash     BYTEA NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    -- Who created it: `admin:<uuid>`, `supabase:<uuid>` or `cli`.
    created_by   TEXT
);

-- Exactly one row: secrets generated on first start and shared by every server using this database.
CREATE TABLE app_settings (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    -- Hex, 32 random bytes: signs local admin tokens (HS256).
    admin_jwt_secret TEXT NOT NULL CHECK (length(admin_jwt_secret) >= 64),
    -- Hex, 32 random bytes: keys API-key digests when SENSEI_API_KEY_PEPPER is not set.
    api_key_pepper   TEXT NOT NULL CHECK (length(api_key_pepper) >= 64),
    created_at       TIMESTAMPTZ NOT NULL
);
