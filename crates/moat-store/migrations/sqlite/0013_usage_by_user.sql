-- A person's own usage records, newest first, without scanning everyone's ("my usage").
CREATE INDEX usage_records_user ON usage_records (user_id, id);
