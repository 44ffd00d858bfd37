"""The Hub: download.py sits low (data and inference read through it); publish.py and card.py sit on top."""
