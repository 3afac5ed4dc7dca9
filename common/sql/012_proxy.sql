-- PracticePost schema step 012_proxy: the installation's outgoing proxy
-- (one row at most). Every stage reads it: the sender (SMTP), the fetcher
-- (IMAP, POP3, IDLE), the sms stage (the provider's HTTP API), the OAuth2
-- token client and the credential test.
--   kind           http (HTTP CONNECT tunnel) or socks5 (names resolved
--                  by the proxy)
--   host, port     where the proxy listens
--   username       proxy login; NULL: the proxy takes no login
--   secret         the proxy password, pp_secret stored form (AES-256-GCM,
--                  like the account passwords); NULL without a login
--   use_for_email  SMTP, IMAP, POP3 and OAuth2 token requests go through it
--   use_for_sms    the SMS provider's HTTP API goes through it
--   updated_at     the stages reconnect when it changes
CREATE TABLE proxy_settings (
    id            smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    kind          text NOT NULL CHECK (kind IN ('http', 'socks5')),
    host          text NOT NULL CHECK (host ~ '^[A-Za-z0-9._:-]{1,253}$'),
    port          integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    username      text CHECK (username <> '' AND username !~ '[\r\n:]'),
    secret        text,
    use_for_email boolean NOT NULL DEFAULT true,
    use_for_sms   boolean NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT proxy_settings_secret_needs_user CHECK (secret IS NULL OR username IS NOT NULL)
);
