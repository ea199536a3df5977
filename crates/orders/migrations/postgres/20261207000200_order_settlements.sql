-- A client waiting for its order to settle (`GET /api/v1/orders/{id}?wait=`) waits on the
-- instance it asked, which may not be the one that settles the order. Every instance hears
-- each settlement, whoever commits it: PostgreSQL delivers a NOTIFY when the transaction
-- commits, and only if it commits. The channel's name is `orders::watchers::CHANNEL`; the
-- payload is the order's id.
CREATE FUNCTION notify_order_settled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orders_settled', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER order_settled
    AFTER UPDATE OF status ON orders
    FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ('confirmed', 'cancelled'))
    EXECUTE FUNCTION notify_order_settled();
