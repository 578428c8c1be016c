-- One owner's keys, newest first, a page at a time, straight from the index: with the owner
-- alone indexed, a team's page sorted every key the team has (15 ms at 2,800 keys).
CREATE INDEX keys_user_newest ON keys (user_id, id);
CREATE INDEX keys_team_newest ON keys (team_id, id);
DROP INDEX keys_user;
DROP INDEX keys_team;
