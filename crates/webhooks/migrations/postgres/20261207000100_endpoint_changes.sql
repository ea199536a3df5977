-- With several webhooks instances, each keeps in memory which event types the endpoints
-- subscribe to, so that events nobody wants cost no transaction. An instance must hear of
-- every change to that, whoever makes it (another instance, a fix by hand): PostgreSQL
-- delivers a NOTIFY when the transaction commits, and only if it commits, and the listeners
-- read the endpoints again. Only the columns that decide what is wanted notify: the
-- dispatcher's lease and the breaker's clock change often and do not. The channel's name
-- is `webhooks::reactions::CHANNEL`.
CREATE FUNCTION notify_webhook_endpoints_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('webhook_endpoints_changed', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_endpoints_changed
    AFTER INSERT OR DELETE OR UPDATE OF event_types, enabled, disabled_reason
    ON webhook_endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION notify_webhook_endpoints_changed();
