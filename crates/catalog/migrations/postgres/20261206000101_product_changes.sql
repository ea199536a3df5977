-- Every catalog instance keeps a search index in memory and must hear of every change to a
-- product, whoever makes it (another instance, inventory's stock through the availability
-- projection, a fix by hand). PostgreSQL delivers a NOTIFY when the transaction commits, and
-- only if it commits; the listeners read the product again. The channel's name is
-- `catalog::changes::CHANNEL`.
CREATE FUNCTION notify_product_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('catalog_product_changed', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER products_changed AFTER INSERT OR UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION notify_product_changed();
