"""hexadd: teach a GPT-2 trained from scratch to add integers."""
