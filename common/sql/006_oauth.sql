-- PracticePost schema step 006_oauth: OAuth2 sign-in for email accounts
-- (Microsoft 365, Google Workspace, or any provider with explicit
-- endpoints). An account authenticates with a password or with OAuth2; an
-- OAuth2 account has one email_oauth row holding its provider settings and
-- the token every stage instance shares. Tokens and the client secret are
-- pp_secret stored forms, never plaintext. Refreshes of one account happen
-- under that row's lock (SELECT ... FOR UPDATE), so never two at once.

ALTER TABLE email_accounts
    ADD COLUMN auth_kind text NOT NULL DEFAULT 'password'
        CHECK (auth_kind IN ('password', 'oauth2'));

-- Provider profiles: the endpoints ({tenant} is replaced by the account's
-- tenant), the servers the provider's mail lives on, its default scopes,
-- and how many days a refresh token may lie unused before the provider
-- forgets it (NULL: no known limit). Operators may change the rows.
CREATE TABLE oauth_profiles (
    name            text PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]+$'),
    device_url      text,
    token_url       text,
    authorize_url   text,
    default_tenant  text NOT NULL DEFAULT '',
    default_scopes  text NOT NULL DEFAULT '',
    smtp_host       text,
    smtp_port       integer,
    smtp_tls        tls_mode,
    imap_host       text,
    imap_port       integer,
    pop3_host       text,
    pop3_port       integer,
    refresh_idle_days integer CHECK (refresh_idle_days IS NULL OR refresh_idle_days > 0)
);

INSERT INTO oauth_profiles VALUES
    ('microsoft',
     'https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode',
     'https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token',
     'https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize',
     'organizations',
     'offline_access https://outlook.office.com/SMTP.Send '
     'https://outlook.office.com/IMAP.AccessAsUser.All '
     'https://outlook.office.com/POP.AccessAsUser.All',
     'smtp.office365.com', 587, 'starttls',
     'outlook.office365.com', 993, 'outlook.office365.com', 995, 90),
    ('google',
     'https://oauth2.googleapis.com/device/code',
     'https://oauth2.googleapis.com/token',
     'https://accounts.google.com/o/oauth2/v2/auth',
     '',
     'https://mail.google.com/',
     'smtp.gmail.com', 587, 'starttls',
     'imap.gmail.com', 993, 'pop.gmail.com', 995, 183),
    ('generic', NULL, NULL, NULL, '', '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE email_oauth (
    account_id      bigint PRIMARY KEY REFERENCES email_accounts ON DELETE CASCADE,
    provider        text NOT NULL REFERENCES oauth_profiles,
    tenant          text NOT NULL DEFAULT '',
    client_id       text NOT NULL CHECK (client_id <> '' AND client_id !~ '[\r\n]'),
    client_secret   text,                -- pp_secret stored form; NULL: public client
    client_secret_expires date,
    scopes          text NOT NULL DEFAULT '',
    -- Endpoints as used (the profile's, with the tenant filled in).
    token_url       text NOT NULL CHECK (token_url ~ '^https?://'),
    device_url      text CHECK (device_url ~ '^https?://'),
    authorize_url   text CHECK (authorize_url ~ '^https?://'),
    mechanism       text NOT NULL DEFAULT 'xoauth2' CHECK (mechanism IN ('xoauth2', 'oauthbearer')),
    refresh_idle_days integer CHECK (refresh_idle_days IS NULL OR refresh_idle_days > 0),
    -- The token, shared by every stage instance.
    access_secret   text,                -- pp_secret
    access_expires_at timestamptz,
    refresh_secret  text,                -- pp_secret; NULL: authenticate again
    authenticated_as text,
    authenticated_at timestamptz,
    granted_scopes  text,
    refreshed_at    timestamptz,         -- last successful refresh (or sign-in)
    refresh_failures integer NOT NULL DEFAULT 0,
    retry_after     timestamptz,         -- the token endpoint failed: not before then
    last_error      text                 -- never a token
);

-- What an operator should hear about before it lapses: a refresh token
-- unused for nearly as long as the provider keeps one (warned 14 days
-- ahead), a client secret that expires within 30 days, an account that
-- was never signed in or whose consent is gone. `status`, `account show`
-- and the stages (self-test events) read this one definition.
CREATE VIEW email_oauth_warnings AS
SELECT o.account_id, a.practice_id, w.kind, w.text
FROM email_oauth o
JOIN email_accounts a ON a.id = o.account_id
CROSS JOIN LATERAL (VALUES
    ('not_authenticated',
     CASE WHEN o.refresh_secret IS NULL THEN
         format('not signed in: run practicepost account authenticate --account %s',
                o.account_id) END),
    ('refresh_token_idle',
     CASE WHEN o.refresh_secret IS NOT NULL AND o.refresh_idle_days IS NOT NULL
               AND now() - coalesce(o.refreshed_at, o.authenticated_at)
                   > (o.refresh_idle_days - 14) * interval '1 day' THEN
         format('the refresh token was last used on %s; %s forgets one unused for %s days '
                '(on %s): let the account send or fetch, or run practicepost account '
                'authenticate --account %s',
                to_char(coalesce(o.refreshed_at, o.authenticated_at), 'YYYY-MM-DD'),
                o.provider, o.refresh_idle_days,
                to_char(coalesce(o.refreshed_at, o.authenticated_at)
                        + o.refresh_idle_days * interval '1 day', 'YYYY-MM-DD'),
                o.account_id) END),
    ('client_secret_expiry',
     CASE WHEN o.client_secret_expires IS NOT NULL
               AND o.client_secret_expires < current_date + 30 THEN
         format('the client secret %s on %s: create a new one in the app registration and '
                'store it with practicepost account oauth --account %s --client-secret-file F',
                CASE WHEN o.client_secret_expires < current_date THEN 'expired'
                     ELSE 'expires' END,
                o.client_secret_expires, o.account_id) END)
) w(kind, text)
WHERE w.text IS NOT NULL;
