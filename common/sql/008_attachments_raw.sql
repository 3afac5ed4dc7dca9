-- 008_attachments_raw: an incoming attachment whose bytes the database can
-- decode from the raw message (base64, or content stored as it is) is not
-- stored a second time: its row says where in messages.body the content
-- lies (byte offset and length) and how it is encoded. pp_attachment_data
-- returns any attachment's bytes, stored or decoded; every reader uses it.

ALTER TABLE attachments
    ALTER COLUMN data DROP NOT NULL,
    ADD COLUMN raw_offset bigint CHECK (raw_offset >= 0),
    ADD COLUMN raw_length bigint CHECK (raw_length >= 0),
    ADD COLUMN raw_encoding text CHECK (raw_encoding IN ('base64', 'identity')),
    ADD CONSTRAINT attachments_bytes CHECK (data IS NOT NULL OR (raw_offset IS NOT NULL
        AND raw_length IS NOT NULL AND raw_encoding IS NOT NULL));

CREATE FUNCTION pp_attachment_data(a attachments) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN a.data IS NOT NULL THEN a.data
                WHEN a.raw_encoding = 'base64' THEN decode(convert_from(substring(
                    convert_to(m.body, 'UTF8') FROM (a.raw_offset + 1)::int FOR a.raw_length::int),
                    'UTF8'), 'base64')
                ELSE substring(convert_to(m.body, 'UTF8') FROM (a.raw_offset + 1)::int
                               FOR a.raw_length::int) END
    FROM messages m WHERE m.id = a.message_id
$$;
