"""Billing fixtures copied from a production export (do not do this)."""

CUSTOMER = {
    "name": "Rosa Delgado",
    "email": "rosa.delgado@outlook.com",
    "phone": "806-348-4985",
    "fax": "220.638.7550",
    "home_tel": "099 8575 3488",
    "card": "4612141739349557893",
    "iban": "ES9306565238906667008966",
    "placeholder_card": "4111 1111 1111 1111",
    "fictional_phone": "202-555-0143",
    "version": "2.4.11",
}
