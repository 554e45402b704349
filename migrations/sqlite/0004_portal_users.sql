-- Contractor portal and admin view (issue #8): web accounts. Additive only.
-- Kept in step with migrations/postgres/0004_portal_users.sql.

-- A contractor's user (role 'contractor', contractor_id set) or an admin (role 'admin',
-- contractor_id NULL). `login` is the e-mail address of a contractor user, the name of an
-- admin. The password is an argon2 PHC string; the first one is a one-time password the
-- user must replace at first login (must_change).
CREATE TABLE web_users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    login           TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL CHECK (role IN ('contractor', 'admin')),
    contractor_id   INTEGER REFERENCES contractors(id),
    password        TEXT NOT NULL,
    must_change     INTEGER NOT NULL DEFAULT 1 CHECK (must_change IN (0, 1)),
    created_at      TEXT NOT NULL,
    CHECK ((role = 'contractor') = (contractor_id IS NOT NULL))
);
CREATE INDEX web_users_contractor ON web_users(contractor_id);
