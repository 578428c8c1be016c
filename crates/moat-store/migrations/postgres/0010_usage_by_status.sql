-- Records with one status, newest first, without scanning every record: the usage explorer
-- looks for failures (a status no record has used to read all of them).
CREATE INDEX usage_records_status ON usage_records (status, id);
