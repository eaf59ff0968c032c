"""Services reached as attributes of the bank (``bank.balances``, ``bank.transactions``)."""
