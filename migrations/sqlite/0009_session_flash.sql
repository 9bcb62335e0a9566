-- A one-time message for the next page a browser session loads (today: a
-- just-rotated administration key, shown once without JavaScript). It is
-- sealed with a key derived from the session id, which only the browser
-- holds (see store::sealed), so a copy of the database does not show it.
alter table sessions add column flash blob;
