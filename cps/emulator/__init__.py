"""The emulated CPS3 card: card OS, test PKI, profiles, vpcd and SoftHSM2 attachments."""
