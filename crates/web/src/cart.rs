//! The cart: which products, how many of each. Prices and names are not kept: they are read
//! from the catalog each time the cart is shown, so the cart never shows a stale price.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Distinct products a cart holds at most (it lives in a cookie).
pub const MAX_LINES: usize = 20;
/// Units of one product a cart holds at most.
pub const MAX_QUANTITY: u32 = 99;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    lines: Vec<CartLine>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: Uuid,
    pub quantity: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("a quantity is a whole number from 1 to {MAX_QUANTITY}")]
    Quantity,
    #[error("the cart holds {MAX_LINES} different products at most")]
    Full,
}

impl Cart {
    /// Adds `quantity` units; a product already in the cart gets more, up to the maximum.
    pub fn add(&mut self, product_id: Uuid, quantity: u32) -> Result<(), CartError> {
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(CartError::Quantity);
        }
        let full = self.lines.len() >= MAX_LINES;
        match self.lines.iter_mut().find(|l| l.product_id == product_id) {
            Some(line) => line.quantity = (line.quantity + quantity).min(MAX_QUANTITY),
            None if full => return Err(CartError::Full),
            None => self.lines.push(CartLine {
                product_id,
                quantity,
            }),
        }
        Ok(())
    }

    /// Sets a line's quantity; zero takes the product out.
    pub fn set(&mut self, product_id: Uuid, quantity: u32) -> Result<(), CartError> {
        if quantity > MAX_QUANTITY {
            return Err(CartError::Quantity);
        }
        if quantity == 0 {
            self.lines.retain(|l| l.product_id != product_id);
        } else if let Some(line) = self.lines.iter_mut().find(|l| l.product_id == product_id) {
            line.quantity = quantity;
        }
        Ok(())
    }

    pub fn lines(&self) -> &[CartLine] {
        &self.lines
    }

    /// Units in the cart, all products together.
    pub fn units(&self) -> u32 {
        self.lines.iter().map(|l| l.quantity).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn clear(&mut self) {
        self.lines.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_product_twice_adds_to_its_line_up_to_the_maximum() {
        let mut cart = Cart::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        cart.add(a, 2).unwrap();
        cart.add(b, 1).unwrap();
        cart.add(a, 3).unwrap();
        assert_eq!(cart.lines().len(), 2);
        assert_eq!(cart.units(), 6);
        cart.add(a, MAX_QUANTITY).unwrap();
        assert_eq!(cart.lines()[0].quantity, MAX_QUANTITY);
    }

    #[test]
    fn quantities_outside_the_range_and_a_full_cart_are_refused() {
        let mut cart = Cart::default();
        assert_eq!(cart.add(Uuid::now_v7(), 0), Err(CartError::Quantity));
        assert_eq!(cart.add(Uuid::now_v7(), 100), Err(CartError::Quantity));
        for _ in 0..MAX_LINES {
            cart.add(Uuid::now_v7(), 1).unwrap();
        }
        assert_eq!(cart.add(Uuid::now_v7(), 1), Err(CartError::Full));
        assert_eq!(cart.units(), MAX_LINES as u32);
    }

    #[test]
    fn setting_zero_takes_the_line_out() {
        let mut cart = Cart::default();
        let a = Uuid::now_v7();
        cart.add(a, 2).unwrap();
        cart.set(a, 5).unwrap();
        assert_eq!(cart.units(), 5);
        cart.set(a, 0).unwrap();
        assert!(cart.is_empty());
        assert_eq!(cart.set(a, 100), Err(CartError::Quantity));
    }
}
